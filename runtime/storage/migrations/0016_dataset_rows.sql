-- Datasets (issue 18): the rows of every dataset the inline::localfs datasetio provider holds,
-- stored once (the registry keeps the dataset's purpose, source and metadata, never its rows).
-- position counts from 0 without gaps: iterrows pages by it.
CREATE TABLE dataset_rows (
    dataset_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    row TEXT NOT NULL,
    PRIMARY KEY (dataset_id, position)
) WITHOUT ROWID;
