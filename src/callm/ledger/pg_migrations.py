"""The data DB's migrations for PostgreSQL, entry for entry with callm.ledger.migrations
(a team ledger, callm.ledger.pg). History: never edited once released."""

from __future__ import annotations

from callm.ledger import attempts as _attempts
from callm.ledger.migrations import (
    DAY_SQL,
    FAILED_SQL,
    LAT_BUCKET_SQL,
)

# The same migrations for PostgreSQL, entry for entry (a shared ledger starts at the schema of
# migration 6, so 1-5 are empty there). A new migration adds an entry to both lists.
_PG_ROLLUP = f"""
    CREATE FUNCTION callm_usage_rollup() RETURNS trigger LANGUAGE plpgsql AS $rollup$
    DECLARE d TEXT;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            d := to_char(to_timestamp(NEW.ts), 'YYYY-MM-DD');
            INSERT INTO usage_day VALUES (NEW.provider, NEW.model, d, 1,
                CAST({FAILED_SQL.format(row="NEW")} AS INTEGER), NEW.input_tokens,
                NEW.output_tokens, coalesce(NEW.cost_usd, 0),
                CAST(NEW.cost_usd IS NULL AS INTEGER))
            ON CONFLICT (provider, model, day) DO UPDATE SET
                requests = usage_day.requests + 1,
                failures = usage_day.failures + excluded.failures,
                input_tokens = usage_day.input_tokens + excluded.input_tokens,
                output_tokens = usage_day.output_tokens + excluded.output_tokens,
                cost_usd = usage_day.cost_usd + excluded.cost_usd,
                unpriced = usage_day.unpriced + excluded.unpriced;
            IF NEW.latency_ms >= 0 THEN
                INSERT INTO usage_latency VALUES (NEW.provider, NEW.model,
                    {LAT_BUCKET_SQL.format(l="NEW.latency_ms")}, d, 1, NEW.latency_ms,
                    NEW.latency_ms)
                ON CONFLICT (provider, model, lat_bucket, day) DO UPDATE SET
                    n = usage_latency.n + 1,
                    lat_min = least(usage_latency.lat_min, excluded.lat_min),
                    lat_max = greatest(usage_latency.lat_max, excluded.lat_max);
            END IF;
            RETURN NEW;
        END IF;
        d := to_char(to_timestamp(OLD.ts), 'YYYY-MM-DD');
        UPDATE usage_day SET
            requests = requests - 1,
            failures = failures - CAST({FAILED_SQL.format(row="OLD")} AS INTEGER),
            input_tokens = input_tokens - OLD.input_tokens,
            output_tokens = output_tokens - OLD.output_tokens,
            cost_usd = cost_usd - coalesce(OLD.cost_usd, 0),
            unpriced = unpriced - CAST(OLD.cost_usd IS NULL AS INTEGER)
        WHERE provider = OLD.provider AND model = OLD.model AND day = d;
        DELETE FROM usage_day WHERE requests <= 0 AND provider = OLD.provider
            AND model = OLD.model AND day = d;
        IF OLD.latency_ms >= 0 THEN
            UPDATE usage_latency SET n = n - 1
            WHERE provider = OLD.provider AND model = OLD.model AND day = d
                AND lat_bucket = {LAT_BUCKET_SQL.format(l="OLD.latency_ms")};
            DELETE FROM usage_latency WHERE n <= 0 AND provider = OLD.provider
                AND model = OLD.model AND day = d;
        END IF;
        RETURN OLD;
    END
    $rollup$;
    CREATE TRIGGER usage_rollup AFTER INSERT OR DELETE ON usage
        FOR EACH ROW EXECUTE FUNCTION callm_usage_rollup();
"""

PG_MIGRATIONS: list[str] = [
    "",
    "",
    "",
    "",
    "",
    # 1-6 as one: usage (plus `origin`, the source of a copied row), model cache, provider
    # state, the two rollups and the trigger that keeps them
    f"""
    CREATE TABLE usage (
        id BIGSERIAL PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        driver TEXT,
        input_tokens BIGINT NOT NULL DEFAULT 0,
        output_tokens BIGINT NOT NULL DEFAULT 0,
        cache_read_tokens BIGINT NOT NULL DEFAULT 0,
        cache_write_tokens BIGINT NOT NULL DEFAULT 0,
        usage_source TEXT NOT NULL DEFAULT 'reported',
        cost_usd DOUBLE PRECISION,
        price_source TEXT,
        latency_ms BIGINT,
        ttft_ms BIGINT,
        outcome TEXT NOT NULL,
        error_kind TEXT,
        attempts INTEGER NOT NULL DEFAULT 1,
        attempts_json TEXT,
        prompt TEXT,
        reply TEXT,
        origin TEXT UNIQUE  -- `ledger copy`: sqlite:<id>:<ts> of the source row
    );
    CREATE INDEX usage_ts ON usage(ts);
    CREATE INDEX usage_provider_ts ON usage(provider, ts);
    CREATE INDEX usage_model_ts ON usage(model, ts);
    CREATE TABLE models (
        provider TEXT NOT NULL,
        id TEXT NOT NULL,
        display_name TEXT,
        context_window BIGINT,
        max_output BIGINT,
        price_input DOUBLE PRECISION,
        price_output DOUBLE PRECISION,
        price_cached_input DOUBLE PRECISION,
        price_source TEXT,
        capabilities TEXT,
        extra TEXT,
        synced_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (provider, id)
    );
    CREATE TABLE model_sync (
        provider TEXT PRIMARY KEY,
        synced_at DOUBLE PRECISION NOT NULL,
        count BIGINT NOT NULL
    );
    CREATE TABLE provider_state (
        name TEXT PRIMARY KEY,
        last_verified DOUBLE PRECISION,
        last_verify_ok INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        cooldown_until DOUBLE PRECISION,
        cooldown_level INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE usage_day (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        day TEXT NOT NULL,
        requests BIGINT NOT NULL,
        failures BIGINT NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        unpriced BIGINT NOT NULL,
        PRIMARY KEY (provider, model, day)
    );
    CREATE TABLE usage_latency (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        lat_bucket BIGINT NOT NULL,
        day TEXT NOT NULL,
        n BIGINT NOT NULL,
        lat_min BIGINT NOT NULL,
        lat_max BIGINT NOT NULL,
        PRIMARY KEY (provider, model, lat_bucket, day)
    );
    {_PG_ROLLUP}
    -- SQLite's total(): sum of floats, 0.0 over no rows (so the stores' SQL runs on both)
    CREATE AGGREGATE total(double precision) (
        SFUNC = float8pl, STYPE = double precision, INITCOND = '0');
    """,
]

# `logs -q` on PostgreSQL: the words of prompt, reply and system, as the 'simple' text-search
# configuration splits and lowercases them (no stemming: like FTS5's unicode61 tokenizer).
LOG_TSVECTOR = (
    "to_tsvector('simple', coalesce(prompt, '') || ' ' || coalesce(reply, '') || ' '"
    " || coalesce(system, ''))"
)
PG_LOG_MIGRATION = f"""
    ALTER TABLE usage ADD COLUMN cid TEXT, ADD COLUMN system TEXT, ADD COLUMN options_json TEXT,
        ADD COLUMN attachments_json TEXT, ADD COLUMN reply_json TEXT;
    CREATE INDEX usage_cid ON usage(cid, id) WHERE cid IS NOT NULL;
    CREATE INDEX usage_text ON usage USING gin (({LOG_TSVECTOR})) WHERE prompt IS NOT NULL;
"""
PG_MIGRATIONS.append(PG_LOG_MIGRATION)  # 7: the call log (see LOG_MIGRATION)
# 8: budget reservations and the 15-minute spend rollup (see migration 8); floor(), not CAST,
#    which rounds in PostgreSQL
PG_MIGRATIONS.append("""
    CREATE TABLE budget_reservation (
        id BIGSERIAL PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        amount_usd DOUBLE PRECISION NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        expires DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX budget_reservation_ts ON budget_reservation(ts);
    CREATE TABLE usage_spend (
        provider TEXT NOT NULL,
        bucket BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (provider, bucket)
    );
    CREATE INDEX usage_spend_bucket ON usage_spend(bucket);
    CREATE FUNCTION callm_usage_spend() RETURNS trigger LANGUAGE plpgsql AS $spend$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO usage_spend VALUES (NEW.provider, floor(NEW.ts / 900), NEW.cost_usd)
            ON CONFLICT (provider, bucket) DO UPDATE
                SET cost_usd = usage_spend.cost_usd + excluded.cost_usd;
            RETURN NEW;
        END IF;
        UPDATE usage_spend SET cost_usd = cost_usd - OLD.cost_usd
        WHERE provider = OLD.provider AND bucket = floor(OLD.ts / 900);
        RETURN OLD;
    END
    $spend$;
    CREATE TRIGGER usage_spend_insert AFTER INSERT ON usage
        FOR EACH ROW WHEN (NEW.cost_usd IS NOT NULL) EXECUTE FUNCTION callm_usage_spend();
    CREATE TRIGGER usage_spend_delete AFTER DELETE ON usage
        FOR EACH ROW WHEN (OLD.cost_usd IS NOT NULL) EXECUTE FUNCTION callm_usage_spend();
    INSERT INTO usage_spend
        SELECT provider, floor(ts / 900), total(cost_usd) FROM usage
        WHERE cost_usd IS NOT NULL GROUP BY 1, 2;
""")

# 9: `callm serve` tokens and who made each call (see migration 9)
PG_MIGRATIONS.append("""
    ALTER TABLE usage ADD COLUMN token TEXT;
    CREATE INDEX usage_token_ts ON usage(token, ts);
    CREATE TABLE gateway_tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        created DOUBLE PRECISION NOT NULL,
        budget_usd_day DOUBLE PRECISION,
        models TEXT
    );
""")

# 10: attempts and failed attempts per provider, model and day (ledger/attempts.py), so a
#     provider whose failure a fallback answered shows in `usage report`
PG_MIGRATIONS.append(_attempts.migration("postgres", FAILED_SQL, DAY_SQL["postgres"]))
