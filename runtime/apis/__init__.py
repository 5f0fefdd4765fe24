"""One module per API, each implementing its generated Protocol."""
