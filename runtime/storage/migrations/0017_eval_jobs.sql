-- Eval jobs (issue 18). job_number is the job id Llama Stack's builtin provider gives ("0", "1"...);
-- each job's generations and scores are rows of its results dataset (dataset_rows), appended a
-- batch at a time after scoring, so rows_done is that dataset's row count and a resumed job
-- starts there (no row is generated or scored twice); rows_done mirrors it for the job's status.
-- aggregates: the final aggregated results.
CREATE TABLE eval_jobs (
    job_number INTEGER PRIMARY KEY,
    benchmark_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    rows_total INTEGER NOT NULL,
    rows_done INTEGER NOT NULL DEFAULT 0,
    results_dataset_id TEXT NOT NULL,
    aggregates TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    owner_principal TEXT NOT NULL DEFAULT '',
    owner_attributes TEXT
);
CREATE INDEX eval_jobs_by_status ON eval_jobs (status);
