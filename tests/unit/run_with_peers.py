#!/usr/bin/python3
"""Starts the KMS, Vault and Kubernetes peers, exports where they are as IK_PEER_* variables,
runs the test binary given as argv[1:] and stops the peers again. Exits with the binary's code."""

import sys
sys.dont_write_bytecode = True   # keep the source tree free of __pycache__

import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))
import peerlib  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: run_with_peers.py TEST-BINARY [ARGS...]\n")
        return 2
    tmp = tempfile.mkdtemp(prefix="ik-remote-")
    peers = []
    try:
        kms = peerlib.kms(access_key="AKIDREMOTETEST", secret_key="remote-test-secret-key",
                          region="eu-west-1", keys=("alias/infra", "alias/other"),
                          session_token="remote-test-session-token")
        peers.append(kms)
        vault = peerlib.vault(token="remote-test-vault-token", tls=True)
        peers.append(vault)
        kube = peerlib.kube(token="remote-test-kube-token")
        peers.append(kube)

        sa_dir = os.path.join(tmp, "serviceaccount")
        incluster = kube.incluster_dir(sa_dir, namespace="infra")
        cert, key = kube.client_cert
        env = dict(os.environ)
        env.update({
            "INFRA_KEYS_HTTP_RETRY_BASE_MS": "5",
            "IK_PEER_TMP": tmp,
            "IK_PEER_KMS_URL": kms.url,
            "IK_PEER_KMS_ACCESS_KEY": kms.access_key,
            "IK_PEER_KMS_SECRET_KEY": kms.secret_key,
            "IK_PEER_KMS_SESSION_TOKEN": kms.session_token,
            "IK_PEER_KMS_REGION": kms.region,
            "IK_PEER_KMS_KEY_ARN": kms.keys["alias/infra"],
            "IK_PEER_KMS_OTHER_ARN": kms.keys["alias/other"],
            "IK_PEER_VAULT_URL": vault.url,
            "IK_PEER_VAULT_TOKEN": vault.token,
            "IK_PEER_VAULT_CA": vault.ca_path,
            "IK_PEER_KUBE_URL": kube.url,
            "IK_PEER_KUBE_TOKEN": kube.token,
            "IK_PEER_KUBE_CA": kube.ca_path,
            "IK_PEER_KUBE_CLIENT_CERT": cert,
            "IK_PEER_KUBE_CLIENT_KEY": key,
            "IK_PEER_KUBECONFIG_TOKEN": kube.write_kubeconfig(os.path.join(tmp, "kubeconfig-token"), namespace="team"),
            "IK_PEER_KUBECONFIG_CERT": kube.write_kubeconfig(os.path.join(tmp, "kubeconfig-cert"), client_cert=True),
            "IK_PEER_KUBECONFIG_BAD_TOKEN": kube.write_kubeconfig(os.path.join(tmp, "kubeconfig-bad"),
                                                                  token="not-the-kube-token"),
            "IK_PEER_SA_DIR": sa_dir,
            "IK_PEER_EXEC_PLUGIN": os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                "peers", "kube_exec_plugin.py"),
            "IK_PEER_SA_HOST": incluster["KUBERNETES_SERVICE_HOST"],
            "IK_PEER_SA_PORT": incluster["KUBERNETES_SERVICE_PORT"],
        })
        code = subprocess.call(sys.argv[1:], env=env)
        if code != 0:
            for peer in peers:
                sys.stderr.write("--- %s log tail ---\n%s\n" % (peer.script, peer.log_tail()))
        return code
    finally:
        for peer in peers:
            peer.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
