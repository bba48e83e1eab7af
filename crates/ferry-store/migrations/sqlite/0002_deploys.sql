-- Services, releases, deploys and the live state of each environment, SQLite dialect.
-- Keep in step with ../postgres/0002_deploys.sql.

-- A service belongs to the project that first declared it; names are unique across
-- projects. `last_release` is the last release number handed out: numbers come from
-- it, not from MAX(number), so a pruned release's number is never given again.
CREATE TABLE services (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    project_id   INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    last_release INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);
CREATE INDEX services_project ON services (project_id);

-- `artifact` is the JSON of ReleaseArtifact; with the sha it identifies a release, so
-- the same build is reused rather than numbered again.
CREATE TABLE releases (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    number     INTEGER NOT NULL,
    sha        TEXT    NOT NULL,
    artifact   TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    env        TEXT    NOT NULL,
    run_id     INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (service_id, number),
    UNIQUE (service_id, sha, artifact)
);

-- release_id and previous_release_id are plain values, not foreign keys: the history of
-- deploys outlives pruned releases (release_number keeps the name readable). Pruning
-- leaves alone the releases of deploys that have not ended.
CREATE TABLE deploys (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id          INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    environment         TEXT    NOT NULL,
    release_id          INTEGER NOT NULL,
    release_number      INTEGER NOT NULL,
    previous_release_id INTEGER,
    kind                TEXT    NOT NULL,
    state               TEXT    NOT NULL,
    phase               TEXT    NOT NULL,
    reason              TEXT,
    requested_by        TEXT    NOT NULL,
    approved_by         TEXT,
    run_id              INTEGER,
    job                 TEXT,
    owner               TEXT,
    lease_expires_at    INTEGER,
    progress            TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER
);
-- The claim scans only queued deploys, oldest first.
CREATE INDEX deploys_queued ON deploys (id) WHERE state = 'queued';
CREATE INDEX deploys_env ON deploys (service_id, environment, state);
CREATE INDEX deploys_leases ON deploys (lease_expires_at) WHERE state = 'running';
CREATE INDEX deploys_owner ON deploys (owner) WHERE state = 'running';
-- One running deploy per service and environment, whatever the claim query does.
CREATE UNIQUE INDEX deploys_one_running ON deploys (service_id, environment)
    WHERE state = 'running';

CREATE TABLE deploy_steps (
    deploy_id INTEGER NOT NULL REFERENCES deploys (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    phase     TEXT    NOT NULL,
    message   TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (deploy_id, seq)
);

-- The one record of which release serves an environment's traffic. The foreign keys
-- to releases keep a live or warm release from being deleted. Instances are JSON owned
-- by the engine's targets.
CREATE TABLE live_envs (
    service_id          INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    environment         TEXT    NOT NULL,
    release_id          INTEGER NOT NULL REFERENCES releases (id),
    instances           TEXT    NOT NULL,
    previous_release_id INTEGER REFERENCES releases (id),
    previous_instances  TEXT,
    warm_until          INTEGER,
    deploy_id           INTEGER NOT NULL REFERENCES deploys (id),
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (service_id, environment)
);
CREATE INDEX live_envs_release ON live_envs (release_id);
CREATE INDEX live_envs_previous ON live_envs (previous_release_id);
