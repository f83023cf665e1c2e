"""One module per dashboard page: ``render()`` lays the page out from published data."""
