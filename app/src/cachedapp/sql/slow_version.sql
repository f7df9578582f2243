-- slow_version(): the challenge's deliberately slow query (sleep, then version()).
-- Idempotent: CREATE OR REPLACE. Installed by `cachedapp-db install-schema --sleep S`,
-- which fills in the sleep in seconds (default 5; the tests use 1).
-- PL/pgSQL, not SQL, so it is never inlined and track_functions counts every call
-- (pg_stat_user_functions.calls = DB executions).
CREATE OR REPLACE FUNCTION public.slow_version() RETURNS text
LANGUAGE plpgsql VOLATILE
AS $body$
BEGIN
    PERFORM pg_sleep({sleep_seconds});
    RETURN version();
END
$body$;
