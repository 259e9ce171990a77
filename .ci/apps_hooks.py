"""Schemathesis hooks for the apps API run (.ci/apps-api.sh).

`wait` long-polls for up to 60 s when no event comes, which is what an app wants and what
the document says; generated requests would spend most of the run waiting. The hook keeps
each generated wait at one second: the parameter is still sent and validated.
"""

import schemathesis


@schemathesis.hook
def map_query(ctx, query):
    if query and isinstance(query.get("wait"), int) and query["wait"] > 1:
        query["wait"] = 1
    return query
