# Run by the release's own python (tasks/build.yml): the app imports, and
# psycopg2 is the source build linked against the system libpq, not a
# psycopg2-binary wheel with its bundled copy.
import importlib.metadata as md
import json
import site

import cachedapp  # noqa: F401
import psycopg2
import psycopg2.extensions

names = {(d.metadata["Name"] or "").lower() for d in md.distributions()}
assert "psycopg2-binary" not in names, "psycopg2-binary is installed"
with open("/proc/self/maps", encoding="utf-8") as maps:
    libpq = sorted({line.split()[-1] for line in maps if "libpq.so" in line})
assert libpq, "libpq is not loaded"
site_dirs = site.getsitepackages()
assert not any(p.startswith(tuple(site_dirs)) for p in libpq), f"bundled libpq: {libpq}"
print(
    json.dumps(
        {
            "cachedapp": md.version("cachedapp"),
            "psycopg2": psycopg2.__version__,
            "libpq": psycopg2.extensions.libpq_version(),
            "libpq_path": libpq,
        }
    )
)
