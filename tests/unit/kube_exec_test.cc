// Kubernetes exec credential plugins: the kubeconfig's exec block, the plugin run, its ExecCredential.
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "secrets/kube_exec.h"
#include "secrets/kubeconfig.h"
#include "util/error.h"
#include "error_of.h"
#include "temp_dir.h"

using namespace ik;
using namespace std::chrono_literals;

namespace {

using test::error_of;

secrets::ExecPlugin plugin_v1() {
    secrets::ExecPlugin plugin;
    plugin.api_version = "client.authentication.k8s.io/v1";
    plugin.command = "get-token";
    plugin.where = "kubeconfig k user u";
    return plugin;
}

std::string text(const SecretBytes& bytes) { return std::string(bytes.begin(), bytes.end()); }

// A kubeconfig whose user runs `command` with `exec_extra` YAML lines under exec:.
std::string write_kubeconfig(const test::TempDir& dir, const std::string& exec_block) {
    std::string path = (dir.path / "kubeconfig").string();
    std::ofstream(path) << "apiVersion: v1\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n"
                           "users:\n- name: u\n  user:\n    exec:\n"
                        << exec_block << "contexts:\n- name: c\n  context: {cluster: k, user: u, namespace: team}\n"
                        << "- name: other\n  context: {cluster: k, user: u, namespace: elsewhere}\n";
    return path;
}

std::string write_script(const test::TempDir& dir, const std::string& name, const std::string& body) {
    std::filesystem::create_directories((dir.path / name).parent_path());
    std::string path = (dir.path / name).string();
    std::ofstream(path) << "#!/bin/sh\n" << body;
    ::chmod(path.c_str(), 0755);
    return path;
}

}  // namespace

TEST_CASE("an ExecCredential with a token and an expiry is read as client-go reads it") {
    auto result = secrets::parse_exec_credential(
        R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
            "status":{"token":"k8s-aws-v1.abc","expirationTimestamp":"2026-12-02T12:30:00Z"}})",
        plugin_v1());
    CHECK(text(result.credential.token) == "k8s-aws-v1.abc");
    REQUIRE(result.expires);
    CHECK(std::chrono::system_clock::to_time_t(*result.expires) == 1796214600);
}

TEST_CASE("an ExecCredential with a client certificate needs both the certificate and the key") {
    auto plugin = plugin_v1();
    auto both = secrets::parse_exec_credential(
        R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
            "status":{"clientCertificateData":"CERT","clientKeyData":"KEY"}})", plugin);
    CHECK(both.credential.client_cert_pem == "CERT");
    CHECK(text(both.credential.client_key_pem) == "KEY");
    CHECK_FALSE(both.expires);
    Error e = error_of([&] {
        secrets::parse_exec_credential(R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
                                           "status":{"clientCertificateData":"CERT"}})", plugin);
    });
    CHECK(e.code() == ExitCode::provider);
    CHECK(std::string(e.what()) == "kubeconfig k user u: exec plugin get-token returned only certificate or key, not both");
}

TEST_CASE("an ExecCredential of another API version, without status or without a credential is refused") {
    auto plugin = plugin_v1();
    CHECK(std::string(error_of([&] {
              secrets::parse_exec_credential(R"({"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"t"}})", plugin);
          }).what()) == "kubeconfig k user u: exec plugin get-token is configured to use API version "
                        "client.authentication.k8s.io/v1, plugin returned version client.authentication.k8s.io/v1beta1");
    CHECK(std::string(error_of([&] {
              secrets::parse_exec_credential(R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential"})", plugin);
          }).what()).find("didn't return a status field") != std::string::npos);
    CHECK(std::string(error_of([&] {
              secrets::parse_exec_credential(R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{}})", plugin);
          }).what()).find("didn't return a token or cert/key pair") != std::string::npos);
    CHECK(error_of([&] { secrets::parse_exec_credential("not json", plugin); }).code() == ExitCode::provider);
}

TEST_CASE("RFC 3339 timestamps with fractions and offsets") {
    auto base = secrets::parse_rfc3339("2026-12-02T12:30:00Z");
    REQUIRE(base);
    CHECK(secrets::parse_rfc3339("2026-12-02T12:30:00.123456Z") == base);
    CHECK(secrets::parse_rfc3339("2026-12-02T14:30:00+02:00") == base);
    CHECK(secrets::parse_rfc3339("2026-12-02T11:00:00-01:30") == base);
    CHECK_FALSE(secrets::parse_rfc3339("2026-12-02 12:30:00"));
    CHECK_FALSE(secrets::parse_rfc3339("2026-12-02T12:30:00"));
    CHECK_FALSE(secrets::parse_rfc3339("2026-12-02T12:30:00Zjunk"));
    CHECK(secrets::parse_rfc3339("2999-01-01T00:00:00Z") > std::chrono::system_clock::now());
}

TEST_CASE("the exec block is checked before anything runs: apiVersion, interactiveMode for v1") {
    test::TempDir dir;
    auto bad_version = write_kubeconfig(dir, "      apiVersion: client.authentication.k8s.io/v1alpha1\n      command: x\n");
    Error e = error_of([&] { secrets::kubeconfig_connection(bad_version); });
    CHECK(e.code() == ExitCode::usage);
    CHECK(std::string(e.what()).find("v1alpha1") != std::string::npos);
    auto no_mode = write_kubeconfig(dir, "      apiVersion: client.authentication.k8s.io/v1\n      command: x\n");
    CHECK(std::string(error_of([&] { secrets::kubeconfig_connection(no_mode); }).what()).find("interactiveMode must be specified") !=
          std::string::npos);
    // v1beta1 defaults to IfAvailable.
    auto beta = write_kubeconfig(dir, "      apiVersion: client.authentication.k8s.io/v1beta1\n      command: x\n");
    CHECK(secrets::kubeconfig_connection(beta).auth);
}

TEST_CASE("a command with a slash runs relative to the kubeconfig's directory, with args, env and exec info") {
    test::TempDir dir;
    write_script(dir, "bin/get-token",
                 "printf '%s|%s|%s' \"$1\" \"$PLUGIN_COLOUR\" \"$KUBERNETES_EXEC_INFO\" > \"$(dirname \"$0\")/seen\"\n"
                 "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"tok-1\"}}'\n");
    auto path = write_kubeconfig(dir,
                                 "      apiVersion: client.authentication.k8s.io/v1\n      command: ./bin/get-token\n"
                                 "      args: [--cluster, prod]\n      env: [{name: PLUGIN_COLOUR, value: blue}]\n"
                                 "      interactiveMode: Never\n      provideClusterInfo: true\n");
    auto connection = secrets::kubeconfig_connection(path);
    CHECK(connection.namespace_name == "team");
    CHECK(text(connection.auth->current().token) == "tok-1");
    std::ifstream seen(dir.path / "bin" / "seen");
    std::string line((std::istreambuf_iterator<char>(seen)), {});
    CHECK(line.rfind("--cluster|blue|{", 0) == 0);
    CHECK(line.find(R"("kind":"ExecCredential")") != std::string::npos);
    CHECK(line.find(R"("interactive":false)") != std::string::npos);
    CHECK(line.find(R"("server":"https://127.0.0.1:1")") != std::string::npos);
}

TEST_CASE("a missing plugin command names it and gives the install hint; a failing one its exit code") {
    test::TempDir dir;
    auto missing = write_kubeconfig(dir, "      apiVersion: client.authentication.k8s.io/v1\n      command: no-such-plugin-x\n"
                                         "      interactiveMode: Never\n      installHint: install it with apt-get\n");
    Error e = error_of([&] { secrets::kubeconfig_connection(missing).auth->current(); });
    CHECK(e.code() == ExitCode::usage);
    CHECK(std::string(e.what()).find("executable no-such-plugin-x not found") != std::string::npos);
    CHECK(e.hint() == "install it with apt-get");
    write_script(dir, "fails", "echo 'token expired, run sso login' >&2\nexit 3\n");
    auto failing = write_kubeconfig(dir, "      apiVersion: client.authentication.k8s.io/v1\n      command: ./fails\n"
                                         "      interactiveMode: Never\n");
    Error f = error_of([&] { secrets::kubeconfig_connection(failing).auth->current(); });
    CHECK(f.code() == ExitCode::provider);
    CHECK(std::string(f.what()).find("failed with exit code 3") != std::string::npos);
}

TEST_CASE("a credential is reused until it expires and fetched again on renew") {
    test::TempDir dir;
    write_script(dir, "count",
                 "n=$(cat \"$(dirname \"$0\")/n\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$(dirname \"$0\")/n\"\n"
                 "echo \"{\\\"apiVersion\\\":\\\"client.authentication.k8s.io/v1beta1\\\",\\\"kind\\\":\\\"ExecCredential\\\","
                 "\\\"status\\\":{\\\"token\\\":\\\"tok-$n\\\",\\\"expirationTimestamp\\\":\\\"$EXPIRY\\\"}}\"\n");
    auto path = write_kubeconfig(dir, "      apiVersion: client.authentication.k8s.io/v1beta1\n      command: ./count\n"
                                      "      env: [{name: EXPIRY, value: '2999-01-01T00:00:00Z'}]\n");
    auto auth = secrets::kubeconfig_connection(path).auth;
    CHECK(text(auth->current().token) == "tok-1");
    CHECK(text(auth->current().token) == "tok-1");
    CHECK(auth->renew());
    CHECK(text(auth->current().token) == "tok-2");

    auto expired = write_kubeconfig(dir, "      apiVersion: client.authentication.k8s.io/v1beta1\n      command: ./count\n"
                                         "      env: [{name: EXPIRY, value: '2000-01-01T00:00:00Z'}]\n");
    auto stale = secrets::kubeconfig_connection(expired).auth;
    CHECK(text(stale->current().token) == "tok-3");
    CHECK(text(stale->current().token) == "tok-4");
}

TEST_CASE("interactiveMode Always refuses when standard input is not a terminal") {
    test::TempDir dir;
    auto path = write_kubeconfig(dir, "      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/true\n"
                                      "      interactiveMode: Always\n");
    if (::isatty(0)) return;  // the test runner gives the unit tests no terminal
    Error e = error_of([&] { secrets::kubeconfig_connection(path).auth->current(); });
    CHECK(e.code() == ExitCode::usage);
    CHECK(std::string(e.what()).find("standard input is not a terminal") != std::string::npos);
}

TEST_CASE("--context picks another context and its namespace; --namespace wins over it") {
    test::TempDir dir;
    auto path = write_kubeconfig(dir, "      apiVersion: client.authentication.k8s.io/v1beta1\n      command: x\n");
    std::map<std::string, std::string> vars = {{"KUBECONFIG", path}, {secrets::context_variable, "other"}};
    auto env = [&vars](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    CHECK(secrets::kube_connection(env).namespace_name == "elsewhere");
    CHECK(secrets::kube_connection(env).source.find("(context other)") != std::string::npos);
    vars[secrets::namespace_variable] = "chosen";
    CHECK(secrets::kube_connection(env).namespace_name == "chosen");
    vars[secrets::context_variable] = "absent";
    CHECK(error_of([&] { secrets::kube_connection(env); }).code() == ExitCode::usage);
}
