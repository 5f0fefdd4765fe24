"""Vector stores: records and search (api), attached files and their ingestion (files, ingest), file batches."""
