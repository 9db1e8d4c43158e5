"""Which providers a call tried, as SQL over `usage.attempts_json`, on SQLite and PostgreSQL:
the attempts rollup (migration 10, triggers and backfill) and `usage report`'s raw rows.

An attempt is an entry of attempts_json that reached its provider (outcome other than
'skipped', which a cooling-down model gets): it belongs to the provider and model its "model"
names ("provider/model", split at the first '/'), and it failed unless its outcome is 'ok'.
Retries of one model inside an attempt count once. A row with no such entry (written before
attempts were kept, or by hand) is one attempt of its own provider and model, failed when the
call failed. Frozen: migration 10 is built from this; other rules need a new migration.
"""

from __future__ import annotations

# PostgreSQL: attempts_json (TEXT) as a jsonb array, or NULL when it is not one; a value
# that does not parse must not make a usage row fail to insert.
PG_JSON_ARRAY = """
    CREATE FUNCTION callm_json_array(t TEXT) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE
    AS $arr$
    DECLARE j jsonb;
    BEGIN
        IF t IS NULL OR ltrim(t, E' \\t\\n\\r') NOT LIKE '[%' THEN  -- JSON's blanks
            RETURN NULL;
        END IF;
        BEGIN
            j := t::jsonb;
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END;
        RETURN CASE WHEN jsonb_typeof(j) = 'array' THEN j END;
    END
    $arr$;
"""


def attempt_sql(dialect: str, row: str, failed: str) -> tuple[str, str, str, str]:
    """(join, provider, model, failed) for the attempts of the usage row `row` (a table alias,
    NEW or OLD). `join` goes after a FROM that has `row`, and yields a row per attempt: the
    entries, or one row of NULLs when there are none (LEFT JOIN), which the three expressions
    turn into the row's own provider and model. `failed` is the SQL that says a call failed,
    with {row}; the failed expression is 0 or 1."""
    call_failed = failed.format(row=row)
    if dialect == "postgres":
        m = "(j.value ->> 'model')"
        outcome = "coalesce(j.value ->> 'outcome', '')"
        join = (
            f"LEFT JOIN LATERAL jsonb_array_elements(callm_json_array({row}.attempts_json))"
            f" AS j(value) ON jsonb_typeof(j.value) = 'object'"
            f" AND jsonb_typeof(j.value -> 'model') = 'string' AND strpos({m}, '/') > 1"
            f" AND {outcome} <> 'skipped'"
        )
        prov, mod = f"split_part({m}, '/', 1)", f"substr({m}, strpos({m}, '/') + 1)"
    else:
        m = "json_extract(j.value, '$.model')"
        outcome = "coalesce(json_extract(j.value, '$.outcome'), '')"
        attempts = f"{row}.attempts_json"
        arr = (
            f"CASE WHEN json_valid({attempts}) THEN"
            f" CASE WHEN json_type({attempts}) = 'array' THEN {attempts} END END"
        )
        join = (
            f"LEFT JOIN json_each({arr}) AS j ON j.type = 'object'"
            f" AND json_type(j.value, '$.model') = 'text' AND instr({m}, '/') > 1"
            f" AND {outcome} <> 'skipped'"
        )
        prov, mod = f"substr({m}, 1, instr({m}, '/') - 1)", f"substr({m}, instr({m}, '/') + 1)"
    return (
        join,
        f"CASE WHEN j.value IS NULL THEN {row}.provider ELSE {prov} END",
        f"CASE WHEN j.value IS NULL THEN {row}.model ELSE {mod} END",
        f"CAST(CASE WHEN j.value IS NULL THEN {call_failed} ELSE {outcome} <> 'ok' END AS INTEGER)",
    )


def backfill_sql(dialect: str, failed: str, day: str) -> str:
    """The attempts of every usage row into an empty usage_attempt_day."""
    join, p, m, f = attempt_sql(dialect, "usage", failed)
    return (
        f"INSERT INTO usage_attempt_day (provider, model, day, token, attempts, failed)"
        f" SELECT {p}, {m}, {day.format(ts='usage.ts')}, coalesce(usage.token, ''), count(*),"
        f" sum({f}) FROM usage {join} GROUP BY 1, 2, 3, 4"
    )


def migration(dialect: str, failed: str, day: str) -> str:
    """Migration 10: usage_attempt_day, attempts and failed attempts per provider, model,
    local day and gateway token ('' for none: `--by token` reads it too), kept by triggers
    on usage and backfilled from the rows already there. `day` is the dialect's DAY_SQL,
    with {ts}."""
    new_join, new_p, new_m, new_f = attempt_sql(dialect, "NEW", failed)
    old_join, old_p, old_m, old_f = attempt_sql(dialect, "OLD", failed)
    new_day, old_day = day.format(ts="NEW.ts"), day.format(ts="OLD.ts")
    old_token = "coalesce(OLD.token, '')"
    upsert = (
        "ON CONFLICT (provider, model, day, token) DO UPDATE SET"
        " attempts = usage_attempt_day.attempts + excluded.attempts,"
        " failed = usage_attempt_day.failed + excluded.failed"
    )
    insert_new = (
        f"INSERT INTO usage_attempt_day (provider, model, day, token, attempts, failed)"
        f" SELECT {new_p}, {new_m}, {new_day}, coalesce(NEW.token, ''), count(*),"
        f" sum({new_f}) FROM (SELECT 1) AS one {new_join} WHERE true GROUP BY 1, 2"
        f" ORDER BY 1, 2 {upsert};"  # rollup rows locked in one order: no deadlock on PG
    )
    backfill = backfill_sql(dialect, failed, day) + ";"
    if dialect == "postgres":
        return f"""
    CREATE TABLE usage_attempt_day (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        day TEXT NOT NULL,
        token TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        failed BIGINT NOT NULL,
        PRIMARY KEY (provider, model, day, token)
    );
    {PG_JSON_ARRAY}
    CREATE FUNCTION callm_usage_attempts() RETURNS trigger LANGUAGE plpgsql AS $attempts$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {insert_new}
            RETURN NEW;
        END IF;
        UPDATE usage_attempt_day SET attempts = attempts - x.n, failed = failed - x.f
        FROM (SELECT {old_p} AS p, {old_m} AS m, count(*) AS n, sum({old_f}) AS f
              FROM (SELECT 1) AS one {old_join} GROUP BY 1, 2) AS x
        WHERE provider = x.p AND model = x.m AND day = {old_day} AND token = {old_token};
        DELETE FROM usage_attempt_day WHERE attempts <= 0 AND day = {old_day};
        RETURN OLD;
    END
    $attempts$;
    CREATE TRIGGER usage_attempts AFTER INSERT OR DELETE ON usage
        FOR EACH ROW EXECUTE FUNCTION callm_usage_attempts();
    {backfill}
    """
    # SQLite before 3.33 has no UPDATE ... FROM: each rollup row of the day subtracts its own
    mine = f"{old_p} = usage_attempt_day.provider AND {old_m} = usage_attempt_day.model"
    return f"""
    CREATE TABLE usage_attempt_day (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        day TEXT NOT NULL,                -- date(ts, 'unixepoch', 'localtime')
        token TEXT NOT NULL,              -- the gateway token of the call; '' for none
        attempts INTEGER NOT NULL,        -- models of this provider tried (ledger/attempts.py)
        failed INTEGER NOT NULL,          -- of which did not answer
        PRIMARY KEY (provider, model, day, token)
    ) WITHOUT ROWID;
    CREATE TRIGGER usage_attempts_insert AFTER INSERT ON usage BEGIN
        {insert_new}
    END;
    CREATE TRIGGER usage_attempts_delete AFTER DELETE ON usage BEGIN
        UPDATE usage_attempt_day SET
            attempts = attempts - (SELECT count(*) FROM (SELECT 1) AS one {old_join}
                WHERE {mine}),
            failed = failed - (SELECT coalesce(sum({old_f}), 0) FROM (SELECT 1) AS one
                {old_join} WHERE {mine})
        WHERE day = {old_day} AND token = {old_token} AND (provider, model) IN (
            SELECT {old_p}, {old_m} FROM (SELECT 1) AS one {old_join});
        DELETE FROM usage_attempt_day WHERE attempts <= 0 AND day = {old_day};
    END;
    {backfill}
    """
