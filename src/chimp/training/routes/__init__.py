"""HTTP routes of the training API, one module per resource; handlers stay thin."""
