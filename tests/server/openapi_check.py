#!/usr/bin/env python3
"""Checks jobq-server's answers against its OpenAPI 3.1 document.

    openapi_check.py [--coverage] DOC.json [RESPONSES.jsonl...]

First the document itself: its structure as OpenAPI 3.1 (every operation has
responses, every response a description, path parameters match the path
templates, operation ids are unique, security requirements name schemes that
exist), every $ref resolves inside the document (nothing is fetched), and
every schema is a valid JSON Schema 2020-12.

Then each recorded answer, one JSON object a line as tests/server/lib.sh
writes them: {"method", "path" (with the query), "status", "type" (the
Content-Type without parameters), "body"}. The path must match a path
template of the document and the method one of its operations (a request no
operation takes must get one of the answers of the document's
`x-jobq-unrouted`: 404 for an unknown path, 405 for a method the path lacks),
the status must be one the operation documents, the content type one of that
response's media types, and a JSON body must be valid against its schema.
text/event-stream, text/plain and other non-JSON bodies: the type only. HEAD
is checked as GET without its body.

Prints every mismatch with the request and the schema path; exits 1 if there
is any, 0 otherwise. Needs python3-jsonschema (4.10, Debian bookworm's, or
newer) for the schemas; without it, everything else is still checked and a
warning says the bodies were not validated.

--coverage also lists the documented answers (operation and status) that no
recorded answer had: to see what the tests leave out (it changes nothing in
the exit status).
"""
import json
import re
import sys
import urllib.parse

try:
    import jsonschema
except ImportError:  # checked without schemas; see main()
    jsonschema = None

# The document's URI for $ref resolution. It is never fetched: the document
# is registered under it, and remote references are refused.
BASE = "https://jobq-server.invalid/openapi.json"

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PATH_ITEM_KEYS = set(METHODS) | {"$ref", "summary", "description", "servers", "parameters"}
OPERATION_KEYS = {"tags", "summary", "description", "externalDocs", "operationId", "parameters",
                  "requestBody", "responses", "callbacks", "deprecated", "security", "servers"}
RESPONSE_KEYS = {"description", "headers", "content", "links"}
MEDIA_KEYS = {"schema", "example", "examples", "encoding"}
PARAM_KEYS = {"name", "in", "description", "required", "deprecated", "allowEmptyValue", "style",
              "explode", "allowReserved", "schema", "example", "examples", "content"}
STATUS_RE = re.compile(r"^([1-5][0-9][0-9]|[1-5]XX|default)$")
MEDIA_RE = re.compile(r"^[a-z0-9!#$&^_.+-]+/([a-z0-9!#$&^_.+-]+|\*)$")
JSON_TYPE_RE = re.compile(r"^application/([a-z0-9.+-]*\+)?json$")


def pointer_escape(s):
    return s.replace("~", "~0").replace("/", "~1")


def pointer_get(doc, pointer):
    """The value at a JSON pointer ("/a/b"), or raises KeyError."""
    node = doc
    if pointer == "":
        return node
    if not pointer.startswith("/"):
        raise KeyError(pointer)
    for part in pointer[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(pointer)
    return node


def deref(doc, obj):
    """Follows a local $ref (an object with only a $ref): (value, its pointer or None)."""
    seen = set()
    where = None
    while isinstance(obj, dict) and "$ref" in obj and len(obj) == 1:
        r = obj["$ref"]
        if r in seen or not isinstance(r, str) or not r.startswith("#"):
            return obj, where
        seen.add(r)
        where = urllib.parse.unquote(r[1:])
        obj = pointer_get(doc, where)
    return obj, where


# ---- the document ----


def walk_refs(node, where, out):
    """Every $ref in the document: (the pointer of the object holding it, the ref)."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            out.append((where, node["$ref"]))
        for k, v in node.items():
            walk_refs(v, where + "/" + pointer_escape(k), out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk_refs(v, "%s/%d" % (where, i), out)


def template_names(path):
    return re.findall(r"\{([^{}/]+)\}", path)


def check_document(doc):
    """The document's structural errors, as sentences."""
    errs = []

    def err(where, msg):
        errs.append("document #%s: %s" % (where, msg))

    if not isinstance(doc, dict):
        return ["document: not a JSON object"]
    if not isinstance(doc.get("openapi"), str) or not re.match(r"^3\.1\.[0-9]+$", doc["openapi"]):
        err("/openapi", "must be an OpenAPI 3.1 version string such as \"3.1.0\"")
    info = doc.get("info")
    if not isinstance(info, dict) or not isinstance(info.get("title"), str) or \
            not isinstance(info.get("version"), str):
        err("/info", "must be an object with the strings title and version")
    paths = doc.get("paths")
    if not isinstance(paths, dict):
        err("/paths", "must be an object")
        paths = {}
    components = doc.get("components", {})
    if not isinstance(components, dict):
        err("/components", "must be an object")
        components = {}
    schemes = components.get("securitySchemes", {})

    # every $ref resolves, locally (nothing is fetched)
    refs = []
    walk_refs(doc, "", refs)
    for where, r in refs:
        if not r.startswith("#"):
            err(where, "$ref %r is not inside the document (nothing is fetched)" % r)
            continue
        try:
            pointer_get(doc, urllib.parse.unquote(r[1:]))
        except KeyError:
            err(where, "$ref %r does not resolve" % r)

    def check_security(where, reqs):
        if not isinstance(reqs, list):
            err(where, "security must be a list")
            return
        for i, req in enumerate(reqs):
            if not isinstance(req, dict):
                err("%s/%d" % (where, i), "a security requirement must be an object")
                continue
            for name in req:
                if name not in schemes:
                    err("%s/%d" % (where, i), "security scheme %r is not in "
                        "components.securitySchemes" % name)

    for name, sch in schemes.items():
        w = "/components/securitySchemes/" + pointer_escape(name)
        sch, _ = deref(doc, sch)
        t = sch.get("type") if isinstance(sch, dict) else None
        if t not in ("apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"):
            err(w, "type must be apiKey, http, mutualTLS, oauth2 or openIdConnect")
        elif t == "apiKey" and (not isinstance(sch.get("name"), str) or
                                sch.get("in") not in ("query", "header", "cookie")):
            err(w, "an apiKey scheme needs name and in (query, header or cookie)")
        elif t == "http" and not isinstance(sch.get("scheme"), str):
            err(w, "an http scheme needs scheme")
    if "security" in doc:
        check_security("/security", doc["security"])
    declared_tags = {t.get("name") for t in doc.get("tags", []) if isinstance(t, dict)}

    def check_params(where, plist):
        """The parameters as {(name, in): param}."""
        out = {}
        if not isinstance(plist, list):
            err(where, "parameters must be a list")
            return out
        for i, p in enumerate(plist):
            w = "%s/%d" % (where, i)
            try:
                p, _ = deref(doc, p)
            except KeyError:
                continue  # reported with the refs
            if not isinstance(p, dict):
                err(w, "a parameter must be an object")
                continue
            extra = [k for k in p if k not in PARAM_KEYS and not k.startswith("x-")]
            if extra:
                err(w, "unknown members %s" % extra)
            if not isinstance(p.get("name"), str) or p.get("in") not in ("query", "header", "path",
                                                                         "cookie"):
                err(w, "a parameter needs name and in (query, header, path or cookie)")
                continue
            if p["in"] == "path" and p.get("required") is not True:
                err(w, "path parameter %r must be required: true" % p["name"])
            if ("schema" in p) == ("content" in p):
                err(w, "a parameter has exactly one of schema and content")
            key = (p["name"], p["in"])
            if key in out:
                err(w, "parameter %s in %s twice" % key)
            out[key] = p
        return out

    def check_content(where, content):
        if not isinstance(content, dict) or not content:
            err(where, "content must be a non-empty object of media types")
            return
        for mt, media in content.items():
            w = where + "/" + pointer_escape(mt)
            if not MEDIA_RE.match(mt.lower()):
                err(w, "%r is not a media type or range" % mt)
            if not isinstance(media, dict):
                err(w, "a media type object must be an object")
                continue
            extra = [k for k in media if k not in MEDIA_KEYS and not k.startswith("x-")]
            if extra:
                err(w, "unknown members %s" % extra)

    def check_responses(where, responses):
        if not isinstance(responses, dict) or not responses:
            err(where, "responses must be a non-empty object")
            return
        for status, resp in responses.items():
            w = where + "/" + pointer_escape(status)
            if not STATUS_RE.match(status):
                err(w, "%r is not a status code, a range such as 4XX, or default" % status)
            try:
                resp, _ = deref(doc, resp)
            except KeyError:
                continue
            if not isinstance(resp, dict) or not isinstance(resp.get("description"), str):
                err(w, "a response needs a description")
                continue
            extra = [k for k in resp if k not in RESPONSE_KEYS and not k.startswith("x-")]
            if extra:
                err(w, "unknown members %s" % extra)
            if "content" in resp:
                check_content(w + "/content", resp["content"])

    op_ids = {}
    normalized = {}
    for path, item in paths.items():
        wp = "/paths/" + pointer_escape(path)
        if not path.startswith("/"):
            err(wp, "a path must start with /")
        norm = re.sub(r"\{[^{}/]+\}", "{}", path)
        if norm in normalized:
            err(wp, "the same template as %r" % normalized[norm])
        normalized[norm] = path
        if not isinstance(item, dict):
            err(wp, "a path item must be an object")
            continue
        extra = [k for k in item if k not in PATH_ITEM_KEYS and not k.startswith("x-")]
        if extra:
            err(wp, "unknown members %s" % extra)
        item_params = check_params(wp + "/parameters", item.get("parameters", []))
        names = template_names(path)
        if not any(m in item for m in METHODS):
            err(wp, "a path item without an operation")
        for m in METHODS:
            if m not in item:
                continue
            w = wp + "/" + m
            op = item[m]
            if not isinstance(op, dict):
                err(w, "an operation must be an object")
                continue
            extra = [k for k in op if k not in OPERATION_KEYS and not k.startswith("x-")]
            if extra:
                err(w, "unknown members %s" % extra)
            oid = op.get("operationId")
            if oid is not None:
                if oid in op_ids:
                    err(w, "operationId %r is also %s" % (oid, op_ids[oid]))
                op_ids[oid] = w
            params = dict(item_params)
            params.update(check_params(w + "/parameters", op.get("parameters", [])))
            declared = {n for (n, where_in) in params if where_in == "path"}
            for n in names:
                if n not in declared:
                    err(w, "path parameter {%s} is not declared" % n)
            for n in declared - set(names):
                err(w, "path parameter %r is not in the path" % n)
            if "requestBody" in op:
                try:
                    body, _ = deref(doc, op["requestBody"])
                    if not isinstance(body, dict) or "content" not in body:
                        err(w + "/requestBody", "a request body needs content")
                    else:
                        check_content(w + "/requestBody/content", body["content"])
                except KeyError:
                    pass
            if "security" in op:
                check_security(w + "/security", op["security"])
            for t in op.get("tags", []):
                if t not in declared_tags:
                    err(w, "tag %r is not declared in the document's tags" % t)
            if "responses" not in op:
                err(w, "an operation needs responses")
            else:
                check_responses(w + "/responses", op["responses"])

    for name, resp in components.get("responses", {}).items():
        w = "/components/responses/" + pointer_escape(name)
        if not isinstance(resp, dict) or not isinstance(resp.get("description"), str):
            err(w, "a response needs a description")
        elif "content" in resp:
            check_content(w + "/content", resp["content"])

    unrouted = doc.get("x-jobq-unrouted")
    if unrouted is not None:
        if not isinstance(unrouted, dict):
            err("/x-jobq-unrouted", "must be an object")
        else:
            for k in ("unknownPath", "otherMethod"):
                if k in unrouted:
                    check_responses("/x-jobq-unrouted/" + k, unrouted[k])

    # every schema is a JSON Schema 2020-12
    if jsonschema is not None:
        for where, schema in schemas_of(doc):
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.exceptions.SchemaError as e:
                err(where, "not a valid JSON Schema 2020-12: %s" % e.message)
    return errs


def schemas_of(doc):
    """(pointer, schema) of every schema the document holds where OpenAPI puts them."""
    out = []

    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                w = where + "/" + pointer_escape(k)
                if k == "schema" and isinstance(v, (dict, bool)):
                    out.append((w, v))
                else:
                    walk(v, w)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, "%s/%d" % (where, i))

    walk({k: v for k, v in doc.items() if k != "components"}, "")
    comps = doc.get("components", {})
    for name, s in comps.get("schemas", {}).items():
        out.append(("/components/schemas/" + pointer_escape(name), s))
    walk({k: v for k, v in comps.items() if k != "schemas"}, "/components")
    return out


# ---- the answers ----


class Validators:
    """Draft 2020-12 validators of schemas inside the document, their $refs
    resolved into it: with a referencing registry (jsonschema 4.18 and
    later), else with a RefResolver (4.10 to 4.17)."""

    def __init__(self, doc):
        self.doc = doc
        self.cache = {}
        self.registry = None
        self.resolver = None
        try:
            import referencing
            import referencing.jsonschema
            resource = referencing.Resource.from_contents(
                doc, default_specification=referencing.jsonschema.DRAFT202012)
            self.registry = referencing.Registry().with_resource(BASE, resource)
            jsonschema.Draft202012Validator({}, registry=self.registry)
        except (ImportError, TypeError):  # no referencing, or a jsonschema before 4.18
            self.registry = None

            def refuse(uri):
                raise jsonschema.exceptions.RefResolutionError("not fetched: %s" % uri)

            self.resolver = jsonschema.RefResolver(BASE, doc, handlers={
                "http": refuse, "https": refuse, "file": refuse, "ftp": refuse})

    def get(self, pointer):
        v = self.cache.get(pointer)
        if v is None:
            schema = {"$ref": BASE + "#" + urllib.parse.quote(pointer, safe="/~")}
            if self.registry is not None:
                v = jsonschema.Draft202012Validator(schema, registry=self.registry)
            else:
                v = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
            self.cache[pointer] = v
        return v


def split_template(t):
    return t.split("/")


def match_path(paths, path):
    """The path template matching path (literal segments win), or None."""
    segs = [urllib.parse.unquote(s) for s in path.split("/")]
    best, best_lit = None, -1
    for t in paths:
        ts = split_template(t)
        if len(ts) != len(segs):
            continue
        lit = 0
        for a, b in zip(ts, segs):
            if re.fullmatch(r"\{[^{}/]+\}", a):
                if b == "":
                    break
            elif a == b:
                lit += 1
            else:
                break
        else:
            if lit > best_lit:
                best, best_lit = t, lit
    return best


def media_matches(key, ctype):
    key = key.lower()
    if key == "*/*" or key == ctype:
        return True
    if key.endswith("/*"):
        return ctype.split("/")[0] == key[:-2]
    return False


class Checker:
    def __init__(self, doc):
        self.doc = doc
        self.validators = Validators(doc) if jsonschema is not None else None
        self.seen = set()  # (the responses' pointer, status key) answered

    def check(self, rec):
        """The mismatches of one recorded answer, as sentences."""
        doc = self.doc
        method = str(rec.get("method", "")).upper()
        full = str(rec.get("path", ""))
        status = str(rec.get("status"))
        ctype = str(rec.get("type") or "").split(";")[0].strip().lower()
        body = rec.get("body") or ""
        what = "%s %s -> %s%s" % (method, full, status, " " + ctype if ctype else "")
        path = full.split("?", 1)[0].split("#", 1)[0]
        template = match_path(doc.get("paths", {}), path)
        unrouted = doc.get("x-jobq-unrouted", {})
        if template is None:
            responses = unrouted.get("unknownPath")
            where = "/x-jobq-unrouted/unknownPath"
            if responses is None or status not in responses:
                return ["%s: the path is not in the document" % what]
        else:
            item = doc["paths"][template]
            m = method.lower()
            if m == "head" and "head" not in item:
                m = "get"
            if m in item:
                responses = item[m].get("responses", {})
                where = "/paths/%s/%s/responses" % (pointer_escape(template), m)
            else:
                responses = unrouted.get("otherMethod")
                where = "/x-jobq-unrouted/otherMethod"
                if responses is None or status not in responses:
                    return ["%s: %s is not documented for %s" % (what, method, template)]
        key = status if status in responses else status[0] + "XX"
        if key not in responses:
            key = "default"
        if key not in responses:
            return ["%s: status %s is not documented at #%s" % (what, status, where)]
        self.seen.add((where, key))
        where += "/" + key
        resp, rwhere = deref(doc, responses[key])
        if rwhere is not None:
            where = rwhere
        content = resp.get("content")
        if method == "HEAD" or status == "304":
            return []  # no body to check
        if not content:
            if body:
                return ["%s: documented without a body at #%s, answered %d bytes"
                        % (what, where, len(body.encode()))]
            return []
        mkey = next((k for k in content if media_matches(k, ctype)), None)
        if mkey is None:
            return ["%s: content type %r is not documented at #%s (documented: %s)"
                    % (what, ctype, where, ", ".join(content))]
        if not JSON_TYPE_RE.match(ctype):
            return []  # event streams, text, files: the type only
        try:
            value = json.loads(body)
        except ValueError as e:
            return ["%s: the body is not JSON (%s): %.200s" % (what, e, body)]
        if "schema" not in content[mkey] or self.validators is None:
            return []
        spointer = "%s/content/%s/schema" % (where, pointer_escape(mkey))
        out = []
        errors = sorted(self.validators.get(spointer).iter_errors(value),
                        key=lambda e: list(map(str, e.absolute_path)))
        for e in errors[:10]:
            at = "/" + "/".join(str(p) for p in e.absolute_path)
            spath = "/".join(str(p) for p in e.schema_path)
            why = e.message[:300]
            if e.context:  # anyOf/oneOf: the alternative that came closest
                b = jsonschema.exceptions.best_match(e.context)
                why += "; closest: at /%s: %s" % ("/".join(str(p) for p in b.absolute_path),
                                                  b.message[:200])
            out.append("%s: body at %s: %s (schema #%s, via %s)" % (what, at, why, spointer, spath))
        if len(errors) > 10:
            out.append("%s: ... and %d more" % (what, len(errors) - 10))
        return out


def not_covered(doc, seen):
    """The documented (operation, status) pairs no answer had, as lines."""
    out = []
    for path, item in doc.get("paths", {}).items():
        for m in METHODS:
            if m not in item:
                continue
            where = "/paths/%s/%s/responses" % (pointer_escape(path), m)
            for status in item[m].get("responses", {}):
                if (where, status) not in seen:
                    out.append("%s %s %s" % (m.upper(), path, status))
    return out


def main(argv):
    coverage = "--coverage" in argv[1:]
    argv = [a for a in argv if a != "--coverage"]
    if len(argv) < 2:
        sys.stderr.write("usage: openapi_check.py [--coverage] DOC.json [RESPONSES.jsonl...]\n")
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print("openapi: cannot read %s: %s" % (argv[1], e))
        return 1
    problems = check_document(doc)
    if jsonschema is None:
        sys.stderr.write("openapi: warning: python3-jsonschema is missing (tests/deps.sh installs "
                         "it): bodies are not validated against their schemas\n")
    n = 0
    if not problems:
        checker = Checker(doc)
        for name in argv[2:]:
            with open(name, encoding="utf-8") as f:
                for i, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError as e:
                        problems.append("%s:%d: not JSON: %s" % (name, i, e))
                        continue
                    n += 1
                    problems.extend(checker.check(rec))
        if coverage:
            left = not_covered(doc, checker.seen)
            for line in left:
                print("openapi: not answered: " + line)
            print("openapi: %d of the documented answers were not seen" % len(left))
    for p in problems:
        print("openapi: " + p)
    if problems:
        print("openapi: %d mismatch(es)" % len(problems))
        return 1
    print("openapi: the document and %d answer(s) match" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
