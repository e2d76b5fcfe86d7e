#!/usr/bin/env python3
"""Tests of tests/server/openapi_check.py, the checker every server test runs
at its end: answers that match the document pass, and each kind of mismatch
(a body against its schema, an undocumented path, method, status or content
type, a body that is not JSON) is reported with exit 1, so that the checker
can fail. Also the document checks: the real document passes, broken ones
(a $ref that does not resolve, an operation without responses, an
undeclared path parameter, a duplicate operationId, an unknown security
scheme, an invalid schema) are reported.

    openapi_check_test.py        (exit 77 without python3-jsonschema)
"""
import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "openapi_check.py")
DOC = os.path.join(HERE, "..", "..", "examples", "server", "assets", "openapi.json")

JOB = {"id": "01a24a6b-9d99-725c-912a-6a524c6e647b", "kind": "echo", "state": "queued",
       "payload": {"ms": 0}, "owner": "alice", "priority": 5, "progress": 0, "attempts": 0,
       "maxAttempts": 0, "createdAt": 1796544688357, "runAt": 1796544688357, "attemptLog": []}


def rec(method, path, status, body, ctype="application/json"):
    if not isinstance(body, str):
        body = json.dumps(body)
    return {"method": method, "path": path, "status": status, "type": ctype, "body": body}


def error_body(code="not_found", message="no such thing"):
    return {"success": False, "error": {"code": code, "message": message}}


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        with open(DOC, encoding="utf-8") as f:
            self.doc = json.load(f)

    def tearDown(self):
        self.tmp.cleanup()

    def run_checker(self, records, doc=None):
        """(exit code, output) of the checker on records against doc."""
        doc_path = DOC
        if doc is not None:
            doc_path = os.path.join(self.tmp.name, "doc.json")
            with open(doc_path, "w", encoding="utf-8") as f:
                json.dump(doc, f)
        args = [sys.executable, CHECKER, doc_path]
        if records is not None:
            resp_path = os.path.join(self.tmp.name, "responses.jsonl")
            with open(resp_path, "w", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps(r) + "\n")
            args.append(resp_path)
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return p.returncode, p.stdout

    def assert_passes(self, records, doc=None):
        rc, out = self.run_checker(records, doc)
        self.assertEqual(rc, 0, out)
        self.assertIn("match", out)

    def assert_reported(self, records, *needles, doc=None):
        rc, out = self.run_checker(records, doc)
        self.assertEqual(rc, 1, out)
        for n in needles:
            self.assertIn(n, out)
        return out


class Answers(Base):
    def test_matching_answers_pass(self):
        self.assert_passes([
            rec("GET", "/healthz", 200, {"status": "ok", "uptimeSeconds": 1.5}),
            rec("GET", "/v1/jobs/" + JOB["id"] + "?wait=5", 200, {"success": True, "job": JOB}),
            rec("POST", "/v1/jobs", 202, {"success": True, "id": JOB["id"],
                                          "deduplicated": False, "job": JOB}),
            rec("GET", "/v1/jobs?limit=2", 200, {"success": True, "jobs": [JOB, JOB],
                                                 "nextCursor": None}),
            rec("DELETE", "/v1/jobs/x", 409, error_body("JOBQ_ESTATE", "already finished")),
            rec("GET", "/metrics", 200, "# HELP x\n", "text/plain"),
            rec("GET", "/v1/jobs/" + JOB["id"] + "/events", 200, "event: snapshot\n",
                "text/event-stream"),
            rec("GET", "/audio/a.wav", 206, "RIFF", "audio/wav"),
            rec("HEAD", "/healthz", 200, ""),
            rec("OPTIONS", "/v1/jobs", 204, "", ""),
            # requests no operation takes get the answers of x-jobq-unrouted
            rec("GET", "/v1/nothing", 404, error_body()),
            rec("PUT", "/v1/jobs", 405, error_body("method_not_allowed", "PUT is not allowed")),
        ])

    def test_schema_violation_is_reported(self):
        bad = dict(JOB, state="sleeping")
        out = self.assert_reported(
            [rec("GET", "/v1/jobs/" + JOB["id"], 200, {"success": True, "job": bad})],
            "GET /v1/jobs/" + JOB["id"] + " -> 200", "body at /job/state", "sleeping",
            "#/paths/~1v1~1jobs~1{id}/get/responses/200/content/application~1json/schema")
        self.assertIn("enum", out)  # the schema path says which keyword failed

    def test_missing_required_member_is_reported(self):
        bad = dict(JOB)
        del bad["kind"]
        self.assert_reported([rec("GET", "/v1/jobs", 200, {"success": True, "jobs": [bad],
                                                           "nextCursor": None})],
                             "body at /jobs/0", "'kind' is a required property")

    def test_error_body_shape_is_enforced(self):
        self.assert_reported([rec("GET", "/v1/jobs/x", 404, {"success": False,
                                                             "error": "not found"})],
                             "body at /error")
        self.assert_reported([rec("GET", "/v1/jobs/x", 404, dict(error_body(), extra=1))],
                             "Additional properties")

    def test_wrong_type_inside_a_referenced_schema(self):
        stats = {"success": True, "stats": {"time": 1, "running": "three", "rateLimited": 0,
                                            "storage": {"healthy": True, "errors": 0},
                                            "webhooks": {"tries": {"delivered": 0, "retried": 0,
                                                                   "failed": 0}}}}
        self.assert_reported([rec("GET", "/v1/stats", 200, stats)], "body at /stats/running",
                             "is not of type 'integer'")

    def test_undocumented_status_is_reported(self):
        self.assert_reported([rec("GET", "/healthz", 418, error_body())],
                             "status 418 is not documented")

    def test_undocumented_path_is_reported(self):
        self.assert_reported([rec("GET", "/v2/jobs", 200, {"success": True})],
                             "GET /v2/jobs -> 200", "the path is not in the document")

    def test_undocumented_method_is_reported(self):
        self.assert_reported([rec("PATCH", "/v1/jobs/" + JOB["id"], 200, {"success": True})],
                             "PATCH is not documented for /v1/jobs/{id}")

    def test_wrong_content_type_is_reported(self):
        self.assert_reported([rec("GET", "/healthz", 200, "ok", "text/plain")],
                             "content type 'text/plain' is not documented")
        self.assert_reported([rec("GET", "/v1/jobs/" + JOB["id"] + "/events", 200, "{}")],
                             "content type 'application/json' is not documented")

    def test_body_that_is_not_json_is_reported(self):
        self.assert_reported([rec("GET", "/healthz", 200, '{"status": "ok",')],
                             "the body is not JSON")

    def test_body_where_none_is_documented_is_reported(self):
        self.assert_reported([rec("OPTIONS", "/v1/jobs", 204, "{}")],
                             "documented without a body")

    def test_every_mismatch_is_printed(self):
        out = self.assert_reported([
            rec("GET", "/healthz", 418, error_body()),
            rec("GET", "/v2/jobs", 200, {}),
            rec("GET", "/healthz", 200, {"status": "fine"}),
        ])
        self.assertIn("3 mismatch(es)", out)

    def test_podcast_shapes(self):
        job = {"jobId": "j1", "status": "completed", "progress": 100, "currentStep": "done",
               "createdAt": "2026-12-06T08:10:30.123Z", "completedAt": "2026-12-06T08:11:00.000Z",
               "audioUrl": "http://h/audio/a.wav", "audioDuration": 12.5,
               "transcript": [{"speaker": "A", "text": "hi"}]}
        self.assert_passes([
            rec("GET", "/api/podcast/jobs/j1", 200, {"success": True, "job": job}),
            rec("POST", "/api/podcast/generate/async", 202,
                {"success": True, "jobId": "j1", "status": "queued", "message": "queued",
                 "position": 0, "estimatedWaitSeconds": 30}),
        ])
        self.assert_reported([rec("GET", "/api/podcast/jobs/j1", 200,
                                  {"success": True, "job": dict(job, status="running")})],
                             "body at /job/status")
        self.assert_reported([rec("GET", "/api/podcast/jobs/j1", 200,
                                  {"success": True, "job": dict(job, createdAt=1765000000000)})],
                             "body at /job/createdAt")

    def test_coverage_lists_what_no_answer_had(self):
        p = os.path.join(self.tmp.name, "r.jsonl")
        with open(p, "w", encoding="utf-8") as f:
            f.write(json.dumps(rec("GET", "/healthz", 200, {"status": "ok", "uptimeSeconds": 1})))
        out = subprocess.run([sys.executable, CHECKER, "--coverage", DOC, p],
                             stdout=subprocess.PIPE, text=True)
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertIn("not answered: GET /healthz 503", out.stdout)
        self.assertNotIn("not answered: GET /healthz 200", out.stdout)


class Document(Base):
    def test_the_document_is_valid(self):
        self.assert_passes(None)

    def test_unresolved_ref_is_reported(self):
        doc = copy.deepcopy(self.doc)
        doc["components"]["schemas"]["JobResponse"]["properties"]["job"] = {
            "$ref": "#/components/schemas/NoSuchJob"}
        self.assert_reported(None, "does not resolve", "NoSuchJob", doc=doc)

    def test_remote_ref_is_reported(self):
        doc = copy.deepcopy(self.doc)
        doc["components"]["schemas"]["Job"] = {"$ref": "https://example.com/job.json"}
        self.assert_reported(None, "is not inside the document", doc=doc)

    def test_operation_without_responses_is_reported(self):
        doc = copy.deepcopy(self.doc)
        del doc["paths"]["/healthz"]["get"]["responses"]
        self.assert_reported(None, "#/paths/~1healthz/get: an operation needs responses", doc=doc)
        doc["paths"]["/healthz"]["get"]["responses"] = {}
        self.assert_reported(None, "responses must be a non-empty object", doc=doc)

    def test_response_without_description_is_reported(self):
        doc = copy.deepcopy(self.doc)
        del doc["components"]["responses"]["Forbidden"]["description"]
        self.assert_reported(None, "a response needs a description", doc=doc)

    def test_undeclared_path_parameter_is_reported(self):
        doc = copy.deepcopy(self.doc)
        doc["paths"]["/v1/jobs/{jobId}/cancel"] = {"post": {"responses": {
            "200": {"description": "ok"}}}}
        self.assert_reported(None, "path parameter {jobId} is not declared", doc=doc)

    def test_duplicate_operation_id_is_reported(self):
        doc = copy.deepcopy(self.doc)
        doc["paths"]["/healthz"]["get"]["operationId"] = "getJob"
        self.assert_reported(None, "operationId 'getJob' is also", doc=doc)

    def test_unknown_security_scheme_is_reported(self):
        doc = copy.deepcopy(self.doc)
        doc["paths"]["/healthz"]["get"]["security"] = [{"cookie": []}]
        self.assert_reported(None, "security scheme 'cookie'", doc=doc)

    def test_invalid_schema_is_reported(self):
        doc = copy.deepcopy(self.doc)
        doc["components"]["schemas"]["JobState"]["type"] = "text"
        self.assert_reported(None, "not a valid JSON Schema 2020-12", doc=doc)

    def test_not_openapi_31_is_reported(self):
        doc = copy.deepcopy(self.doc)
        doc["openapi"] = "3.0.3"
        self.assert_reported(None, "OpenAPI 3.1", doc=doc)

    def test_answers_are_not_checked_against_a_broken_document(self):
        doc = copy.deepcopy(self.doc)
        del doc["paths"]["/healthz"]["get"]["responses"]
        self.assert_reported([rec("GET", "/healthz", 200, {"status": "ok",
                                                           "uptimeSeconds": 1})],
                             "an operation needs responses", doc=doc)


if __name__ == "__main__":
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        print("python3-jsonschema is missing; skipped")
        sys.exit(77)
    unittest.main()
