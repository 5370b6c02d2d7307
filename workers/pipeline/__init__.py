"""chunk -> prompt -> generate -> validate -> merge -> ground. Pure: no database, no queue."""
