"""One router per file; app.py collects them."""
