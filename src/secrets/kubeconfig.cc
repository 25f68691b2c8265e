#include "secrets/kubeconfig.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <botan/base64.h>
#include <botan/mem_ops.h>
#include <yaml-cpp/yaml.h>

#include "util/error.h"

namespace ik::secrets {
namespace {

namespace fs = std::filesystem;

constexpr const char* service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";

std::string env_or(const config::Environment& env, const std::string& name, const std::string& fallback = {}) {
    auto value = env(name);
    return value && !value->empty() ? *value : fallback;
}

std::optional<std::string> read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string trim(const std::string& s) {
    size_t begin = s.find_first_not_of(" \t\r\n");
    if (begin == std::string::npos) return {};
    return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

// The `field` map of the list entry named `name` (clusters → cluster, users → user, ...).
YAML::Node named_entry(const YAML::Node& root, const char* list, const char* field, const std::string& name,
                       const std::string& path) {
    const YAML::Node& entries = root[list];
    if (entries && entries.IsSequence())
        for (const auto& entry : entries)
            if (entry["name"] && entry["name"].as<std::string>() == name && entry[field]) return entry[field];
    fail(ExitCode::usage, "kubeconfig {}: no {} named \"{}\"", path, field, name);
}

std::string text_of(const YAML::Node& map, const char* key) {
    const YAML::Node& node = map[key];
    return node && node.IsScalar() ? node.as<std::string>() : std::string();
}

std::string relative_to(const std::string& file, const fs::path& dir) {
    if (file.empty()) return file;
    fs::path p(file);
    return p.is_absolute() ? file : (dir / p).string();
}

std::string decode_data(const std::string& base64, const std::string& what, const std::string& path) {
    try {
        auto bytes = Botan::base64_decode(base64);
        return std::string(bytes.begin(), bytes.end());
    } catch (const std::exception&) {
        fail(ExitCode::usage, "kubeconfig {}: {} is not base64", path, what);
    }
}

}  // namespace

KubeConnection in_cluster_connection(const config::Environment& env) {
    KubeConnection out;
    std::string host = env_or(env, "KUBERNETES_SERVICE_HOST");
    std::string port = env_or(env, "KUBERNETES_SERVICE_PORT", "443");
    if (host.find(':') != std::string::npos) host = "[" + host + "]";  // IPv6
    out.server = "https://" + host + ":" + port;
    fs::path dir = env_or(env, "INFRA_KEYS_SERVICEACCOUNT_DIR", service_account_dir);
    auto token = read_file(dir / "token");
    if (!token)
        fail(ExitCode::usage, "kubernetes: no service account token in {} (not running in a pod? pass --kubeconfig)",
             dir.string());
    out.token = trim(*token);
    if (fs::exists(dir / "ca.crt")) out.tls.ca_file = (dir / "ca.crt").string();
    out.namespace_name = trim(read_file(dir / "namespace").value_or(""));
    out.source = "in-cluster service account " + dir.string();
    return out;
}

KubeConnection kubeconfig_connection(const std::string& path) {
    auto text = read_file(path);
    if (!text) fail(ExitCode::usage, "kubeconfig {}: cannot read it", path);
    return kubeconfig_from_text(*text, path);
}

KubeConnection kubeconfig_from_text(const std::string& text, const std::string& path) {
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
        fail(ExitCode::usage, "kubeconfig {} line {}: {}", path, e.mark.line + 1, e.msg);
    }
    // A scalar or a list has no fields: reading one would throw outside any usage error.
    if (!root.IsMap()) fail(ExitCode::usage, "kubeconfig {}: not a YAML mapping", path);
    fs::path dir = fs::path(path).parent_path();

    try {
        std::string context_name = text_of(root, "current-context");
        if (context_name.empty()) fail(ExitCode::usage, "kubeconfig {}: no current-context", path);
        YAML::Node context = named_entry(root, "contexts", "context", context_name, path);
        YAML::Node cluster = named_entry(root, "clusters", "cluster", text_of(context, "cluster"), path);
        YAML::Node user = named_entry(root, "users", "user", text_of(context, "user"), path);

        KubeConnection out;
        out.source = fmt::format("kubeconfig {} (context {})", path, context_name);
        out.server = text_of(cluster, "server");
        while (!out.server.empty() && out.server.back() == '/') out.server.pop_back();
        if (out.server.empty()) fail(ExitCode::usage, "kubeconfig {}: cluster of context {} has no server", path, context_name);
        out.namespace_name = text_of(context, "namespace");

        // insecure-skip-tls-verify is deliberately not honoured: the server is always verified.
        out.tls.ca_file = relative_to(text_of(cluster, "certificate-authority"), dir);
        if (auto data = text_of(cluster, "certificate-authority-data"); !data.empty())
            out.tls.ca_pem = decode_data(data, "certificate-authority-data", path);

        if (user["exec"] || user["auth-provider"])
            throw Error(ExitCode::usage,
                        fmt::format("kubeconfig {}: user of context {} uses an exec or auth-provider plugin", path, context_name),
                        "infra-keys supports token, tokenFile and client certificates; write a kubeconfig with one of those");
        out.token = text_of(user, "token");
        if (std::string file = relative_to(text_of(user, "tokenFile"), dir); out.token.empty() && !file.empty()) {
            auto token = read_file(file);
            if (!token) fail(ExitCode::usage, "kubeconfig {}: cannot read tokenFile {}", path, file);
            out.token = trim(*token);
        }
        out.tls.client_cert_file = relative_to(text_of(user, "client-certificate"), dir);
        out.tls.client_key_file = relative_to(text_of(user, "client-key"), dir);
        if (auto data = text_of(user, "client-certificate-data"); !data.empty())
            out.tls.client_cert_pem = decode_data(data, "client-certificate-data", path);
        if (auto data = text_of(user, "client-key-data"); !data.empty()) {
            std::string key = decode_data(data, "client-key-data", path);
            out.tls.client_key_pem.assign(key.begin(), key.end());
            Botan::secure_scrub_memory(key.data(), key.size());
        }
        return out;
    } catch (const YAML::Exception& e) {
        fail(ExitCode::usage, "kubeconfig {} line {}: {}", path, e.mark.line + 1, e.msg);
    }
}

KubeConnection kube_connection(const config::Environment& env) {
    std::string list = env_or(env, "KUBECONFIG");
    if (!list.empty()) {
        // kubectl merges every file of the list; infra-keys uses the first one that exists.
        std::istringstream paths(list);
        for (std::string path; std::getline(paths, path, ':');)
            if (!path.empty() && fs::exists(path)) return kubeconfig_connection(path);
        fail(ExitCode::usage, "kubeconfig {} does not exist", list);
    }
    if (!env_or(env, "KUBERNETES_SERVICE_HOST").empty()) return in_cluster_connection(env);
    std::string home = env_or(env, "HOME");
    std::string path = (fs::path(home) / ".kube" / "config").string();
    if (home.empty() || !fs::exists(path))
        fail(ExitCode::usage, "kubernetes: no kubeconfig (KUBECONFIG, ~/.kube/config) and not running in a cluster");
    return kubeconfig_connection(path);
}

}  // namespace ik::secrets
