# The data engineer guide's Pattern 1, as its readers run it: load the
# whole export with json.load, apply the guide's transform to each event,
# write NDJSON, and skip records the transform cannot handle. ktbench runs
# it on the same file as ktpipe's splitter and compares.
#
# usage: python3 guide_pattern.py EXPORT.json OUT.ndjson
# prints: records transformed skipped seconds
import json
import sys
import time


def transform(e):
    # The guide's transform, field by field (see shared/guide/README.md).
    return {
        "event_id": e["id"],
        "event_date": e["timestamp"][:10],
        "hour": int(e["timestamp"][11:13]),
        "gateway": e["gateway_id"],
        "user": e["user"],
        "provider": e["provider"],
        "model": e["model"],
        "decision": e["decision"],
        "latency_ms": e["latency_ms"],
        "input_tokens": e["input_tokens"],
        "output_tokens": e["output_tokens"],
        "total_tokens": e["input_tokens"] + e["output_tokens"],
        "cost_usd": float(e["cost"]),
        "policy_count": len(e["policies_evaluated"]),
        "was_blocked": e["decision"] == "block",
    }


def main():
    start = time.perf_counter()
    with open(sys.argv[1]) as f:
        events = json.load(f)
    done = skipped = 0
    with open(sys.argv[2], "w") as out:
        for e in events:
            try:
                row = transform(e)
            except (KeyError, TypeError, ValueError):
                skipped += 1
                continue
            out.write(json.dumps(row) + "\n")
            done += 1
    print(len(events), done, skipped, time.perf_counter() - start)


main()
