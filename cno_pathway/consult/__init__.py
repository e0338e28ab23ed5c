"""The consult a clinician reads: the Pathway that turns a profile into suggestions
(consult.py), its rendering in text, Markdown, HTML and JSON (render.py) and batch runs
over JSON Lines (batch.py)."""
