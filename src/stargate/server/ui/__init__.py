"""The web dashboard under ``/ui``: static pages that read the public API with the user's token (nothing else)."""
