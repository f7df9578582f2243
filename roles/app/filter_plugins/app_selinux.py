"""Filters of the app role for SELinux hosts: the file-context rule for the
socket's directory, written on the path the policy calls canonical.

semanage (and community.general.sefcontext, which calls its seobject) refuses
a rule on the alias side of a path equivalence ("File spec ... conflicts with
equivalency rule"). The equivalences differ between policies: EL9's maps
/run to /var/run (``/run /var/run`` in file_contexts.subs_dist), Fedora's
since 2023 the other way round, and a host may add its own
(file_contexts.subs). So the rule is written against the host's own
equivalences, read at run time; restorecon and systemd resolve the alias
when they label /run/... from it.
"""

from __future__ import annotations

from typing import Any

# Characters with a meaning in a file-context regular expression (PCRE).
_REGEX_SPECIALS = set("\\.^$*+?()[]{}|")


def equivalences(text: str) -> dict[str, str]:
    """{alias: original} from file_contexts.subs(_dist) text ('#' comments)."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 2:
            alias, original = (f.rstrip("/") or "/" for f in fields)
            pairs[alias] = original
    return pairs


def canonical_path(path: str, subs: str = "") -> str:
    """``path`` with its longest aliased prefix replaced, until none applies."""
    if not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    pairs = equivalences(subs)
    current = path.rstrip("/") or "/"
    for _ in range(len(pairs) + 1):
        prefix = next(
            (
                alias
                for alias in sorted(pairs, key=len, reverse=True)
                if current == alias or current.startswith(alias + "/")
            ),
            None,
        )
        if prefix is None:
            return current
        current = pairs[prefix] + current[len(prefix) :]
    raise ValueError(f"equivalences loop on {path!r}")


def fcontext_spec(path: str, subs: str = "") -> str:
    """The regular expression for ``path`` and everything below it, on the
    canonical side of the equivalences in ``subs``."""
    escaped = "".join("\\" + c if c in _REGEX_SPECIALS else c for c in canonical_path(path, subs))
    return escaped + "(/.*)?"


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {"app_selinux_fcontext_spec": fcontext_spec}
