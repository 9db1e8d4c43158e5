"""The data DB's schema as migrations, SQLite's (`MIGRATIONS`, applied in order by
callm.ledger.db; `PRAGMA user_version` counts those run) and the SQL pieces PostgreSQL's
twins in callm.ledger.pg_migrations share. History: a migration is never edited once
released; a change is a new entry here and in pg_migrations."""

from __future__ import annotations

from callm.ledger import attempts as _attempts

SPEND_BUCKET_S = 900  # usage_spend's slot (migration 7 spells it out); frozen

# The latency bucket of the daily usage rollup (migration 4): exact below 50 ms, then steps of
# at most ~5%, so p50/p95 from the rollup are exact for small ledgers and within a bucket for
# big ones. Integer arithmetic only (no SQLite math functions, which builds may lack).
# Frozen: migration 4 is built from it; a different bucketing needs a new migration.
LAT_BUCKET_SQL = """CASE
        WHEN {l} IS NULL OR {l} < 0 THEN -1
        WHEN {l} < 50 THEN {l}
        WHEN {l} < 100 THEN {l} - {l} % 2
        WHEN {l} < 200 THEN {l} - {l} % 5
        WHEN {l} < 500 THEN {l} - {l} % 10
        WHEN {l} < 1000 THEN {l} - {l} % 25
        WHEN {l} < 2000 THEN {l} - {l} % 50
        WHEN {l} < 5000 THEN {l} - {l} % 100
        WHEN {l} < 10000 THEN {l} - {l} % 250
        WHEN {l} < 20000 THEN {l} - {l} % 500
        WHEN {l} < 50000 THEN {l} - {l} % 1000
        WHEN {l} < 100000 THEN {l} - {l} % 2500
        WHEN {l} < 200000 THEN {l} - {l} % 5000
        WHEN {l} < 500000 THEN {l} - {l} % 10000
        ELSE {l} - {l} % 25000 END"""

# Which rows count as failures in the rollup. Until migration 6 a call that succeeded through
# a fallback model counted as a failure; it is a success (the user got an answer).
_FAILED_BEFORE_V6 = "{row}.outcome != 'ok'"
FAILED_SQL = "{row}.outcome NOT IN ('ok', 'fallback')"


def _rollup_triggers(failed: str) -> str:
    """The triggers that keep usage_day/usage_latency in step with usage. `failed` is the SQL
    that says a row failed, with {row} for NEW/OLD."""
    failed_new, failed_old = failed.format(row="NEW"), failed.format(row="OLD")
    return f"""
    CREATE TRIGGER usage_rollup_insert AFTER INSERT ON usage BEGIN
        INSERT INTO usage_day VALUES (
            NEW.provider, NEW.model, date(NEW.ts, 'unixepoch', 'localtime'), 1,
            {failed_new}, NEW.input_tokens, NEW.output_tokens,
            coalesce(NEW.cost_usd, 0), NEW.cost_usd IS NULL)
        ON CONFLICT (provider, model, day) DO UPDATE SET
            requests = requests + 1,
            failures = failures + excluded.failures,
            input_tokens = input_tokens + excluded.input_tokens,
            output_tokens = output_tokens + excluded.output_tokens,
            cost_usd = cost_usd + excluded.cost_usd,
            unpriced = unpriced + excluded.unpriced;
        INSERT INTO usage_latency
            SELECT NEW.provider, NEW.model, {LAT_BUCKET_SQL.format(l="NEW.latency_ms")},
                date(NEW.ts, 'unixepoch', 'localtime'), 1, NEW.latency_ms, NEW.latency_ms
            WHERE NEW.latency_ms >= 0
        ON CONFLICT (provider, model, lat_bucket, day) DO UPDATE SET
            n = n + 1,
            lat_min = min(lat_min, excluded.lat_min),
            lat_max = max(lat_max, excluded.lat_max);
    END;
    CREATE TRIGGER usage_rollup_delete AFTER DELETE ON usage BEGIN
        UPDATE usage_day SET
            requests = requests - 1,
            failures = failures - ({failed_old}),
            input_tokens = input_tokens - OLD.input_tokens,
            output_tokens = output_tokens - OLD.output_tokens,
            cost_usd = cost_usd - coalesce(OLD.cost_usd, 0),
            unpriced = unpriced - (OLD.cost_usd IS NULL)
        WHERE provider = OLD.provider AND model = OLD.model
            AND day = date(OLD.ts, 'unixepoch', 'localtime');
        UPDATE usage_latency SET n = n - 1
        WHERE provider = OLD.provider AND model = OLD.model
            AND lat_bucket = {LAT_BUCKET_SQL.format(l="OLD.latency_ms")}
            AND day = date(OLD.ts, 'unixepoch', 'localtime');
        DELETE FROM usage_day WHERE requests <= 0 AND provider = OLD.provider
            AND model = OLD.model AND day = date(OLD.ts, 'unixepoch', 'localtime');
        DELETE FROM usage_latency WHERE n <= 0 AND provider = OLD.provider
            AND model = OLD.model AND day = date(OLD.ts, 'unixepoch', 'localtime');
    END;
    """


LOG_MIGRATION = """
    ALTER TABLE usage ADD COLUMN cid TEXT;           -- conversation id; NULL when not logged
    ALTER TABLE usage ADD COLUMN system TEXT;        -- system prompt of the call
    ALTER TABLE usage ADD COLUMN options_json TEXT;  -- {temperature, max_tokens, -o ...}
    ALTER TABLE usage ADD COLUMN attachments_json TEXT;  -- [{name, sha256, bytes}]
    ALTER TABLE usage ADD COLUMN reply_json TEXT;    -- the parsed reply of a --schema call
    CREATE INDEX usage_cid ON usage(cid, id) WHERE cid IS NOT NULL;
    CREATE VIRTUAL TABLE logs_fts USING fts5(
        prompt, reply, system, content='usage', content_rowid='id');
    CREATE TRIGGER logs_fts_insert AFTER INSERT ON usage BEGIN
        INSERT INTO logs_fts(rowid, prompt, reply, system)
        VALUES (NEW.id, NEW.prompt, NEW.reply, NEW.system);
    END;
    CREATE TRIGGER logs_fts_delete AFTER DELETE ON usage BEGIN
        INSERT INTO logs_fts(logs_fts, rowid, prompt, reply, system)
        VALUES ('delete', OLD.id, OLD.prompt, OLD.reply, OLD.system);
    END;
    CREATE TRIGGER logs_fts_update AFTER UPDATE OF prompt, reply, system ON usage BEGIN
        INSERT INTO logs_fts(logs_fts, rowid, prompt, reply, system)
        VALUES ('delete', OLD.id, OLD.prompt, OLD.reply, OLD.system);
        INSERT INTO logs_fts(rowid, prompt, reply, system)
        VALUES (NEW.id, NEW.prompt, NEW.reply, NEW.system);
    END;
    INSERT INTO logs_fts(logs_fts) VALUES ('rebuild');
"""

# Append only. Each entry runs once, in order, inside one transaction.
MIGRATIONS: list[str] = [
    # 1: usage ledger, one row per chat call
    """
    CREATE TABLE usage (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,                 -- unix time the call started
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        driver TEXT,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        usage_source TEXT NOT NULL DEFAULT 'reported',   -- reported | estimated
        cost_usd REAL,                    -- NULL when the price is unknown
        price_source TEXT,
        latency_ms INTEGER,
        ttft_ms INTEGER,
        outcome TEXT NOT NULL,            -- ok | error | interrupted | broken_stream | fallback
        error_kind TEXT,
        attempts INTEGER NOT NULL DEFAULT 1,
        attempts_json TEXT,               -- [{provider, model, outcome, error_kind, latency_ms}]
        prompt TEXT,                      -- only with log_prompts = true (from 7: this turn's)
        reply TEXT                        -- only with log_prompts = true
    );
    CREATE INDEX usage_ts ON usage(ts);
    CREATE INDEX usage_provider_ts ON usage(provider, ts);
    CREATE INDEX usage_model_ts ON usage(model, ts);
    """,
    # 2: model cache filled by `models sync`
    """
    CREATE TABLE models (
        provider TEXT NOT NULL,
        id TEXT NOT NULL,
        display_name TEXT,
        context_window INTEGER,
        max_output INTEGER,
        price_input REAL,                 -- USD per million tokens; NULL = unknown
        price_output REAL,
        price_cached_input REAL,
        price_source TEXT,
        capabilities TEXT,                -- JSON list
        extra TEXT,                       -- JSON object: what the vendor reported
        synced_at REAL NOT NULL,
        PRIMARY KEY (provider, id)
    );
    CREATE TABLE model_sync (
        provider TEXT PRIMARY KEY,
        synced_at REAL NOT NULL,
        count INTEGER NOT NULL
    );
    """,
    # 3: provider health: last verification, failure streak, cooldown
    """
    CREATE TABLE provider_state (
        name TEXT PRIMARY KEY,
        last_verified REAL,
        last_verify_ok INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        cooldown_until REAL,
        cooldown_level INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 4: usage rollup per (provider, model, latency bucket, local day), kept by triggers, so
    #    `usage report` reads ~100 rows per model-day instead of every call (1M rows < 0.5 s)
    f"""
    CREATE TABLE usage_daily (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        lat_bucket INTEGER NOT NULL,      -- LAT_BUCKET_SQL of latency_ms; -1 = unknown
        day TEXT NOT NULL,                -- date(ts, 'unixepoch', 'localtime')
        requests INTEGER NOT NULL,
        failures INTEGER NOT NULL,        -- outcome != 'ok'
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,           -- sum over the priced rows
        unpriced INTEGER NOT NULL,        -- rows with cost_usd NULL
        lat_min INTEGER,
        lat_max INTEGER,
        PRIMARY KEY (provider, model, lat_bucket, day)
    ) WITHOUT ROWID;
    CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage BEGIN
        INSERT INTO usage_daily VALUES (
            NEW.provider, NEW.model, {LAT_BUCKET_SQL.format(l="NEW.latency_ms")},
            date(NEW.ts, 'unixepoch', 'localtime'), 1, NEW.outcome != 'ok', NEW.input_tokens,
            NEW.output_tokens, coalesce(NEW.cost_usd, 0), NEW.cost_usd IS NULL,
            NEW.latency_ms, NEW.latency_ms)
        ON CONFLICT (provider, model, lat_bucket, day) DO UPDATE SET
            requests = requests + 1,
            failures = failures + excluded.failures,
            input_tokens = input_tokens + excluded.input_tokens,
            output_tokens = output_tokens + excluded.output_tokens,
            cost_usd = cost_usd + excluded.cost_usd,
            unpriced = unpriced + excluded.unpriced,
            lat_min = min(lat_min, excluded.lat_min),
            lat_max = max(lat_max, excluded.lat_max);
    END;
    CREATE TRIGGER usage_daily_delete AFTER DELETE ON usage BEGIN
        UPDATE usage_daily SET
            requests = requests - 1,
            failures = failures - (OLD.outcome != 'ok'),
            input_tokens = input_tokens - OLD.input_tokens,
            output_tokens = output_tokens - OLD.output_tokens,
            cost_usd = cost_usd - coalesce(OLD.cost_usd, 0),
            unpriced = unpriced - (OLD.cost_usd IS NULL)
        WHERE provider = OLD.provider AND model = OLD.model
            AND lat_bucket = {LAT_BUCKET_SQL.format(l="OLD.latency_ms")}
            AND day = date(OLD.ts, 'unixepoch', 'localtime');
        DELETE FROM usage_daily WHERE requests <= 0 AND provider = OLD.provider
            AND model = OLD.model AND day = date(OLD.ts, 'unixepoch', 'localtime');
    END;
    INSERT INTO usage_daily
        SELECT provider, model, {LAT_BUCKET_SQL.format(l="latency_ms")},
            date(ts, 'unixepoch', 'localtime'), count(*), sum(outcome != 'ok'),
            sum(input_tokens), sum(output_tokens), total(cost_usd), sum(cost_usd IS NULL),
            min(latency_ms), max(latency_ms)
        FROM usage GROUP BY 1, 2, 3, 4;
    """,
    # 5: replaces 4 with two narrower rollups (a report sums ~1 row per model-day for the
    #    counts, and reads the latency histogram only for p50/p95)
    f"""
    DROP TRIGGER usage_daily_insert;
    DROP TRIGGER usage_daily_delete;
    DROP TABLE usage_daily;
    CREATE TABLE usage_day (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        day TEXT NOT NULL,                -- date(ts, 'unixepoch', 'localtime')
        requests INTEGER NOT NULL,
        failures INTEGER NOT NULL,        -- outcome != 'ok'
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,           -- sum over the priced rows
        unpriced INTEGER NOT NULL,        -- rows with cost_usd NULL
        PRIMARY KEY (provider, model, day)
    ) WITHOUT ROWID;
    CREATE TABLE usage_latency (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        lat_bucket INTEGER NOT NULL,      -- LAT_BUCKET_SQL of latency_ms (rows with one only)
        day TEXT NOT NULL,
        n INTEGER NOT NULL,
        lat_min INTEGER NOT NULL,
        lat_max INTEGER NOT NULL,
        PRIMARY KEY (provider, model, lat_bucket, day)
    ) WITHOUT ROWID;
    {_rollup_triggers(_FAILED_BEFORE_V6)}
    INSERT INTO usage_day
        SELECT provider, model, date(ts, 'unixepoch', 'localtime'), count(*),
            sum(outcome != 'ok'), sum(input_tokens), sum(output_tokens), total(cost_usd),
            sum(cost_usd IS NULL)
        FROM usage GROUP BY 1, 2, 3;
    INSERT INTO usage_latency
        SELECT provider, model, {LAT_BUCKET_SQL.format(l="latency_ms")},
            date(ts, 'unixepoch', 'localtime'), count(*), min(latency_ms), max(latency_ms)
        FROM usage WHERE latency_ms >= 0 GROUP BY 1, 2, 3, 4;
    """,
    # 6: a call answered by a fallback model is not a failure
    f"""
    DROP TRIGGER usage_rollup_insert;
    DROP TRIGGER usage_rollup_delete;
    {_rollup_triggers(FAILED_SQL)}
    UPDATE usage_day SET failures = (
        SELECT count(*) FROM usage u
        WHERE u.provider = usage_day.provider AND u.model = usage_day.model
            AND date(u.ts, 'unixepoch', 'localtime') = usage_day.day
            AND {FAILED_SQL.format(row="u")});
""",
    # 7: the call log (issue 14): what was asked and answered, with the usage row it belongs to;
    #    every call belongs to a conversation (cid). logs_fts indexes prompt, reply and system
    #    for `callm logs -q` (FTS5, external content: the text is stored once, in usage).
    LOG_MIGRATION,
    # 8: budget reservations: the worst case of a call in flight, held until its usage row
    #    lands (ledger/reservations.py), so concurrent processes cannot overspend a budget;
    #    and spend per provider per 15 minutes, kept by triggers, so a budget check sums
    #    ~100 rows a day instead of every call (a month of 1M rows: < 1 ms, not 1 s)
    """
    CREATE TABLE budget_reservation (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,                 -- unix time reserved
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        amount_usd REAL NOT NULL,         -- the call's worst case
        pid INTEGER NOT NULL,             -- the process that holds it
        host TEXT NOT NULL,
        expires REAL NOT NULL             -- a holder that never settles loses it then
    );
    CREATE INDEX budget_reservation_ts ON budget_reservation(ts);
    CREATE TABLE usage_spend (
        provider TEXT NOT NULL,
        bucket INTEGER NOT NULL,          -- SPEND_BUCKET_S slots of ts; every UTC offset in
                                          -- use is a multiple, so days and months align
        cost_usd REAL NOT NULL,           -- sum over the priced rows
        PRIMARY KEY (provider, bucket)
    ) WITHOUT ROWID;
    CREATE INDEX usage_spend_bucket ON usage_spend(bucket);
    CREATE TRIGGER usage_spend_insert AFTER INSERT ON usage WHEN NEW.cost_usd IS NOT NULL BEGIN
        INSERT INTO usage_spend VALUES (NEW.provider, CAST(NEW.ts / 900 AS INTEGER), NEW.cost_usd)
        ON CONFLICT (provider, bucket) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd;
    END;
    CREATE TRIGGER usage_spend_delete AFTER DELETE ON usage WHEN OLD.cost_usd IS NOT NULL BEGIN
        UPDATE usage_spend SET cost_usd = cost_usd - OLD.cost_usd
        WHERE provider = OLD.provider AND bucket = CAST(OLD.ts / 900 AS INTEGER);
    END;
    INSERT INTO usage_spend
        SELECT provider, CAST(ts / 900 AS INTEGER), total(cost_usd) FROM usage
        WHERE cost_usd IS NOT NULL GROUP BY 1, 2;
    """,
    # 9: `callm serve` access tokens (only a hash of each is kept) and who made each call
    """
    ALTER TABLE usage ADD COLUMN token TEXT;
    CREATE INDEX usage_token_ts ON usage(token, ts);
    CREATE TABLE gateway_tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,        -- sha256 hex of the token
        created REAL NOT NULL,
        budget_usd_day REAL,              -- NULL: no budget of its own
        models TEXT                       -- JSON list of allowed models/routes; NULL: any
    );
    """,
]

# SQL that differs between the two: the local day of a unix time.
DAY_SQL = {
    "sqlite": "date({ts}, 'unixepoch', 'localtime')",
    "postgres": "to_char(to_timestamp({ts}), 'YYYY-MM-DD')",
}

# 10: attempts and failed attempts per provider, model and day (ledger/attempts.py), so a
#     provider whose failure a fallback answered shows in `usage report`
MIGRATIONS.append(_attempts.migration("sqlite", FAILED_SQL, DAY_SQL["sqlite"]))
