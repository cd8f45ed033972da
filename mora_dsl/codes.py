"""The stable diagnostic codes, each with the explanation ``mora explain CODE`` prints.

Codes never change meaning once released; a retired code stays here marked as such.
E0xx: reading and parsing. E1xx: names. E2xx: types and values. E3xx: validation
of what Kubernetes will accept. E4xx: the dependency graph.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    title: str
    explanation: str
    example: str = ""
    fix: str = ""


_CODES = [
    Code("E001", "syntax error",
         "The parser met a token it did not expect here. The message names the token and what "
         "would have been valid.",
         'service web {\n  image = "nginx" }\n}', "remove the extra `}`"),
    Code("E002", "something is not closed",
         "A string, a block `{ }`, a list `[ ]` or a call `( )` is still open at the end of the "
         "line (strings) or of the file.",
         'service web {\n  image = "nginx\n}', 'close the string: `image = "nginx"`'),
    Code("E003", "unexpected character",
         "A character that cannot start any token of the language, such as `@` or `;`.",
         "service web @ {}", "remove the character; names are letters, digits, `_` and `-`"),
    Code("E004", "unreadable file",
         "A `.mora` or template file is not UTF-8 text (binary data, a NUL byte) or cannot be read.",
         "", "keep only text files with the `.mora` ending in the project folder"),
    Code("E005", "no mora files",
         "The project folder holds no `*.mora` file, so there is nothing to compile.",
         "", "point at the folder that holds your `.mora` files, or create `main.mora`"),
    Code("E101", "unknown name",
         "A name is used that no param, secret, service, volume, template parameter or member of "
         "the current service defines.",
         "service web {\n  image = imag\n}", "define the name, or fix the spelling"),
    Code("E102", "defined twice",
         "Two declarations share a name in the same scope. Params, secrets, volumes, services "
         "and templates share one project-wide namespace; a service's own secrets, inputs, "
         "volumes, ports and files share its namespace.",
         'service web { image = "a" }\nservice web { image = "b" }', "rename one of them"),
    Code("E103", "unknown attribute",
         "An attribute or block that this kind of declaration does not take.",
         'service web {\n  imgae = "nginx"\n}', "use one of the attributes listed in the help"),
    Code("E104", "unknown member",
         "A `.member` that the value does not have: services have `url`, `internal_url`, `host`, "
         "`public_host`, `port.NAME`, `name`, `subdomain` and their own secrets and inputs.",
         "environment = { URL = web.adress }", "use one of the members listed in the help"),
    Code("E105", "unknown declaration",
         "A top-level statement must be `project`, `param`, `secret`, `volume`, `service`, "
         "`template` or `extend`.",
         'servce web { image = "nginx" }', "fix the keyword"),
    Code("E106", "project block",
         "A project has exactly one `project \"name\" { ... }` block.",
         "", 'add `project "my-homelab" { }` to one file'),
    Code("E107", "unknown function",
         "A call to a function the language does not have.",
         "secret k = pasword()", "use one of the built-in functions"),
    Code("E108", "unknown type",
         "A type annotation names no type. Types: string int bool secret email url domain path "
         "port list[T] map[T] one_of(...).",
         "param port: integer", "use `int`"),
    Code("E109", "unknown template",
         "`service x = NAME(...)` instantiates a template, and no template has that name.",
         "service sonarr = ar(kind = \"sonarr\")", "declare `template NAME(...) { }` or fix the name"),
    Code("E110", "missing attribute",
         "A declaration lacks something it needs, such as a service's `image` or a mount's `path`.",
         "service web { }", 'add it: `image = "nginx:1.27"`'),
    Code("W001", "file left unformatted",
         "`mora fmt` could not format this file safely (its output would not have meant the "
         "same program), so it left the file as it was. This is a bug in the formatter.",
         "", "please report it with the file"),
    Code("E111", "not a volume",
         "`mount NAME` mounts a project-wide volume; no `volume NAME` is declared at the top level.",
         "mount media { path = \"/media\" }", "declare `volume media { ... }` or fix the name"),
    Code("E112", "malformed declaration",
         "The statement has a part this keyword does not take (a label, a type, a value, a block, "
         "parameters) or lacks one it needs.",
         'service { image = "nginx" }', "follow the shape shown in the help"),
    Code("E113", "extend of an unknown service",
         "`extend NAME { ... }` adds to, or replaces parts of, a service declared elsewhere in "
         "the project; no service has that name.",
         'extend qbitorrent { micromanager = "qbittorrent" }', "fix the service's name"),
    Code("E201", "type mismatch",
         "A value of one type is used where another is wanted, or a constant does not have the "
         "shape of its type (an e-mail address, a domain, an absolute path...).",
         'replicas = "two"', "use a value of the expected type"),
    Code("E202", "bad arguments",
         "A function or template is called with an unknown keyword argument, a missing required "
         "one, too many positional ones, or one given twice.",
         "password(lenght = 24)", "use the parameters listed in the help"),
    Code("E203", "secret in a clear-text place",
         "A secret (a generated secret, or an input of type secret) would be written where it is "
         "visible: an image name, a subdomain, a path, a label, an input's help text. Secrets may go "
         "into `environment`, `file` contents, `command` and `args`.",
         "image = \"registry/${admin_password}\"", "move the secret into `environment` or a `file`"),
    Code("E204", "generator outside a secret",
         "`password()`, `token()`, `uuid()`, `private_key()`, `ca()` and `certificate()` create a "
         "secret; they are only valid as the value of a `secret` declaration.",
         "environment = { KEY = token() }", "declare `secret key = token()` and use `key`"),
    Code("E205", "secret without a generator",
         "A `secret` declaration's value must be a call to a generator function.",
         'secret key = "hunter2"', "use `password()`, `token()` or another generator; values a "
         "human gives are `input`s"),
    Code("E206", "not constant",
         "Some values must be known when compiling (names of environment variables, subdomains, "
         "paths of files and mounts, template and file names) but depend on a param, a secret or "
         "an input here.",
         'subdomain = "${domain}"', "use a literal, or a template argument"),
    Code("E207", "cannot interpolate",
         "Only scalars (strings, numbers, booleans) can be written into a string with `${...}`.",
         'X = "${[1, 2]}"', "use `join(list, \",\")`"),
    Code("E301", "invalid service name",
         "Service names become Kubernetes names: lower-case letters, digits and `-`, starting with "
         "a letter, at most 63 characters.",
         'service My_App { image = "x" }', "rename it, e.g. `my-app`"),
    Code("E302", "invalid subdomain",
         "A subdomain is one DNS label: lower-case letters, digits and `-`, at most 63 characters, "
         "no dots.",
         'subdomain = "my.app"', 'use one label, e.g. `"my-app"`'),
    Code("E303", "invalid port",
         "Ports are whole numbers from 1 to 65535.",
         "port http = 70000", "use a port in range"),
    Code("E304", "invalid size",
         "Sizes and resources are Kubernetes quantities: a number with an optional unit "
         "(`Ki Mi Gi Ti Pi Ei k M G T P E`, and `m` for CPU).",
         'size = "20 GB"', 'write `size = "20Gi"`'),
    Code("E305", "subdomain used twice",
         "Two services claim the same subdomain; each subdomain routes to one service.",
         "", "give one of them another subdomain"),
    Code("E306", "port used twice",
         "Two ports of one service share a name or a number.",
         "port http = 80\nport web = 80", "remove one"),
    Code("E307", "cannot read the file",
         "A file named by `template(...)` or `file(...)` is missing, unreadable, or outside the "
         "project folder.",
         'file "/etc/app.yml" = template("missing.yml")', "create the file beside the .mora files"),
    Code("E308", "invalid value",
         "A value is outside what the attribute accepts (`when`, `gpu`, `protocol`, a file mode, "
         "an environment variable name, a namespace...).",
         'when = "later"', "use one of the values listed in the help"),
    Code("E309", "no public URL",
         "`.url` and `.public_host` need the service to have a `subdomain` and a public port.",
         "URL = db.url", "use `db.internal_url`, or give the service a subdomain"),
    Code("E401", "dependency cycle",
         "Services depend on each other in a circle, so none of them can be deployed first. The "
         "message prints the cycle; each arrow is a reference or a `depends_on`.",
         "service a { depends_on = [b] }\nservice b { depends_on = [a] }",
         "remove one edge of the cycle"),
    Code("E402", "depends on itself",
         "A service lists itself in `depends_on`.",
         "service a { depends_on = [a] }", "remove it"),
]

CODES: dict[str, Code] = {c.code: c for c in _CODES}


def explain(code: str) -> str | None:
    c = CODES.get(code.upper())
    if c is None:
        return None
    out = [f"{c.code}: {c.title}", "", c.explanation]
    if c.example:
        out += ["", "For example:", "", *("    " + ln for ln in c.example.split("\n"))]
    if c.fix:
        out += ["", f"Fix: {c.fix}."]
    return "\n".join(out)
