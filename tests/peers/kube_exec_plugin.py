#!/usr/bin/python3
"""A Kubernetes exec credential plugin for tests, as `aws eks get-token` behaves: prints an
ExecCredential on stdout.

    kube_exec_plugin.py --token-file F [--api-version v1|v1beta1] [--expires-in SECONDS]
                        [--calls FILE] [--exec-info FILE] [--cert FILE --key FILE] [--fail N]

--token-file: the token to hand out (read at every run, so a test can rotate it); with several
lines, run N (counted in --calls) hands out line N, then the last line.
--calls: a file counting the runs.  --exec-info: where to copy $KUBERNETES_EXEC_INFO (and
whether stdin is a terminal).  --fail N: exit N with a message on stderr instead.
"""
import argparse
import datetime
import json
import os
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--token-file")
    parser.add_argument("--api-version", default="v1")
    parser.add_argument("--expires-in", type=int)
    parser.add_argument("--calls")
    parser.add_argument("--exec-info")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--fail", type=int)
    args = parser.parse_args()
    count = 0
    if args.calls:
        count = int(open(args.calls).read() or 0) if os.path.exists(args.calls) else 0
        with open(args.calls, "w") as f:
            f.write(str(count + 1))
    if args.exec_info:
        with open(args.exec_info, "w") as f:
            json.dump({"exec_info": os.environ.get("KUBERNETES_EXEC_INFO"), "stdin_tty": os.isatty(0),
                       "env": {k: v for k, v in os.environ.items() if k.startswith("PLUGIN_")}}, f)
    if args.fail is not None:
        sys.stderr.write("kube_exec_plugin: failing as asked\n")
        return args.fail
    status = {}
    if args.token_file:
        tokens = open(args.token_file).read().split()
        status["token"] = tokens[min(count, len(tokens) - 1)]
    if args.cert:
        status["clientCertificateData"] = open(args.cert).read()
        status["clientKeyData"] = open(args.key).read()
    if args.expires_in is not None:
        when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=args.expires_in)
        status["expirationTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    json.dump({"apiVersion": "client.authentication.k8s.io/" + args.api_version, "kind": "ExecCredential",
               "spec": {}, "status": status}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
