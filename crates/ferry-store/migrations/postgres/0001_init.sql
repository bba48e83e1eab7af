-- Ferry's state, PostgreSQL dialect. Keep in step with ../sqlite/0001_init.sql: the two
-- files describe one logical schema. Times are unix milliseconds (BIGINT); JSON is
-- stored as TEXT; enums are their lower-case names from ferry-types.

CREATE TABLE projects (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    repo           TEXT    NOT NULL,
    default_branch TEXT    NOT NULL,
    -- Kept as given, because verifying an HMAC signature needs the secret itself,
    -- not a hash of it. To be encrypted at rest with ferry-secrets.
    webhook_secret TEXT,
    created_at     BIGINT  NOT NULL
);

-- The append-only event log. Identity columns: ids are never reused, so a follower's
-- cursor stays valid forever. project/run_id/job are plain values, not foreign keys:
-- the log outlives what it talks about.
CREATE TABLE events (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT  NOT NULL,
    kind    TEXT    NOT NULL,
    project TEXT,
    run_id  BIGINT,
    job     TEXT,
    data    TEXT    NOT NULL
);
CREATE INDEX events_project ON events (project, id);
CREATE INDEX events_run ON events (run_id, id);
CREATE INDEX events_at ON events (at);

CREATE TABLE runs (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id        BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    sha               TEXT    NOT NULL,
    branch            TEXT,
    tag               TEXT,
    trigger           TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    -- The ferry.yml text at `sha`: a run never changes its pipeline under it.
    pipeline          TEXT    NOT NULL,
    concurrency_group TEXT,
    created_at        BIGINT  NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT
);
CREATE INDEX runs_project ON runs (project_id, id);
CREATE INDEX runs_group ON runs (project_id, concurrency_group, status);

CREATE TABLE jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name             TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempt          BIGINT  NOT NULL DEFAULT 0,
    max_attempts     BIGINT  NOT NULL,
    -- Attempts each run or re-run of the job grants: 1 + its `retry`.
    retry_budget     BIGINT  NOT NULL,
    needs_approval   BIGINT  NOT NULL DEFAULT 0,
    allow_failure    BIGINT  NOT NULL DEFAULT 0,
    runs_on          TEXT    NOT NULL,
    needs            TEXT    NOT NULL,
    spec             TEXT    NOT NULL,
    agent_id         TEXT,
    lease_expires_at BIGINT,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    reason           TEXT,
    UNIQUE (run_id, name)
);
-- The queue: claimers scan only queued jobs, oldest first.
CREATE INDEX jobs_queued ON jobs (id) WHERE status = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_agent ON jobs (agent_id) WHERE status = 'running';

-- runs_on and needs, normalised so the claim query can test "labels ⊆ agent's" and
-- "every need finished well" in SQL. The JSON columns in jobs are for reading back.
CREATE TABLE job_labels (
    job_id BIGINT  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    label  TEXT    NOT NULL,
    PRIMARY KEY (job_id, label)
);
CREATE TABLE job_needs (
    job_id  BIGINT  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    need_id BIGINT  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, need_id)
);

-- Log lines, compressed in chunks of about 64 KiB (each line carries its step index
-- inside the chunk). Lines are numbered from 0 per (run, job); a chunk holds
-- [first_line, end_line), so a page is read by decompressing only the chunks that
-- overlap it.
CREATE TABLE log_chunks (
    run_id     BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job        TEXT    NOT NULL,
    first_line BIGINT  NOT NULL,
    end_line   BIGINT  NOT NULL,
    raw_bytes  BIGINT  NOT NULL,
    data       BYTEA   NOT NULL,
    PRIMARY KEY (run_id, job, first_line)
);
CREATE INDEX log_chunks_end ON log_chunks (run_id, job, end_line);

CREATE TABLE tokens (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    -- Hex SHA-256 of the token; the token itself is shown once and never stored.
    hash       TEXT    NOT NULL UNIQUE,
    created_at BIGINT  NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE webhook_deliveries (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id   BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    delivery_id  TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    processed_at BIGINT,
    UNIQUE (project_id, delivery_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (id) WHERE processed_at IS NULL;

CREATE TABLE agents (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    labels     TEXT    NOT NULL,
    first_seen BIGINT  NOT NULL,
    last_seen  BIGINT  NOT NULL
);
