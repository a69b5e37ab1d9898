"""Write adapters that publish desired stock to the sales channels."""
