"""The REST API (FastAPI): the operator's and the UI's view of the controller."""
