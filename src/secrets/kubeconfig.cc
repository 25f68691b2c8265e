#include "secrets/kubeconfig.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <botan/base64.h>
#include <botan/mem_ops.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "secrets/kube_exec.h"
#include "util/error.h"
#include "util/files.h"

namespace ik::secrets {
namespace {

namespace fs = std::filesystem;

constexpr const char* service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";

using config::env_or;

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

SecretBytes secret_of(std::string& text) {
    SecretBytes out(text.begin(), text.end());
    Botan::secure_scrub_memory(text.data(), text.size());
    return out;
}

// A token fixed in the kubeconfig, or none (a client certificate in the TLS options).
class StaticAuth : public KubeAuth {
public:
    explicit StaticAuth(SecretBytes token) : token_(std::move(token)) {}
    KubeCredential current() override { return {token_, {}, {}}; }

private:
    SecretBytes token_;
};

// A token file read for every request: kubelet rewrites a projected service account token
// (and tools rewrite a kubeconfig tokenFile) under a running process.
class FileTokenAuth : public KubeAuth {
public:
    FileTokenAuth(std::string path, std::string what) : path_(std::move(path)), what_(std::move(what)) {}
    KubeCredential current() override {
        auto token = files::read_token(path_);
        if (!token) fail(ExitCode::provider, "{}: cannot read token file {}", what_, path_);
        return {std::move(*token), {}, {}};
    }

private:
    std::string path_;
    std::string what_;
};

std::vector<std::string> strings_of(const YAML::Node& list) {
    std::vector<std::string> out;
    if (list && list.IsSequence())
        for (const auto& item : list) out.push_back(item.as<std::string>());
    return out;
}

nlohmann::json json_of(const YAML::Node& node) {
    if (node.IsMap()) {
        nlohmann::json out = nlohmann::json::object();
        for (const auto& item : node) out[item.first.as<std::string>()] = json_of(item.second);
        return out;
    }
    if (node.IsSequence()) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& item : node) out.push_back(json_of(item));
        return out;
    }
    return node.IsScalar() ? nlohmann::json(node.as<std::string>()) : nlohmann::json();
}

// spec.cluster of KUBERNETES_EXEC_INFO, in the field names of client.authentication.k8s.io.
std::string exec_cluster_info(const YAML::Node& cluster, const net::TlsOptions& tls) {
    nlohmann::json info = {{"server", text_of(cluster, "server")}};
    std::string ca = tls.ca_pem;
    if (ca.empty() && !tls.ca_file.empty()) ca = read_file(tls.ca_file).value_or("");
    if (!ca.empty()) info["certificate-authority-data"] = Botan::base64_encode(as_bytes(ca).data(), ca.size());
    for (const char* field : {"tls-server-name", "proxy-url"})
        if (auto value = text_of(cluster, field); !value.empty()) info[field] = value;
    if (const YAML::Node& extensions = cluster["extensions"]; extensions && extensions.IsSequence())
        for (const auto& extension : extensions)
            if (text_of(extension, "name") == "client.authentication.k8s.io/exec" && extension["extension"])
                info["config"] = json_of(extension["extension"]);
    return info.dump();
}

std::shared_ptr<KubeAuth> exec_auth(const YAML::Node& exec, const YAML::Node& cluster, const net::TlsOptions& tls,
                                    const fs::path& dir, const std::string& where) {
    ExecPlugin plugin;
    plugin.where = where;
    plugin.api_version = text_of(exec, "apiVersion");
    plugin.command = text_of(exec, "command");
    // As client-go resolves it: a command with a slash is a path relative to the kubeconfig's
    // directory; a bare name is looked up in PATH.
    if (plugin.command.find('/') != std::string::npos) plugin.command = relative_to(plugin.command, dir);
    plugin.args = strings_of(exec["args"]);
    if (const YAML::Node& env = exec["env"]; env && env.IsSequence())
        for (const auto& var : env) plugin.env.emplace_back(text_of(var, "name"), text_of(var, "value"));
    plugin.install_hint = text_of(exec, "installHint");
    plugin.interactive_mode = text_of(exec, "interactiveMode");
    if (exec["provideClusterInfo"] && exec["provideClusterInfo"].as<bool>()) plugin.cluster_json = exec_cluster_info(cluster, tls);
    return make_exec_auth(std::move(plugin));
}

}  // namespace

KubeConnection in_cluster_connection(const config::Environment& env) {
    KubeConnection out;
    std::string host = env_or(env, "KUBERNETES_SERVICE_HOST");
    std::string port = env_or(env, "KUBERNETES_SERVICE_PORT", "443");
    if (host.find(':') != std::string::npos) host = "[" + host + "]";  // IPv6
    out.server = "https://" + host + ":" + port;
    fs::path dir = env_or(env, "INFRA_KEYS_SERVICEACCOUNT_DIR", service_account_dir);
    if (!fs::exists(dir / "token"))
        fail(ExitCode::usage, "kubernetes: no service account token in {} (not running in a pod? pass --kubeconfig)",
             dir.string());
    out.auth = std::make_shared<FileTokenAuth>((dir / "token").string(), "in-cluster service account");
    if (fs::exists(dir / "ca.crt")) out.tls.ca_file = (dir / "ca.crt").string();
    out.namespace_name = trim(read_file(dir / "namespace").value_or(""));
    out.source = "in-cluster service account " + dir.string();
    return out;
}

KubeConnection kubeconfig_connection(const std::string& path, const std::string& context) {
    auto text = read_file(path);
    if (!text) fail(ExitCode::usage, "kubeconfig {}: cannot read it", path);
    return kubeconfig_from_text(*text, path, context);
}

KubeConnection kubeconfig_from_text(const std::string& text, const std::string& path, const std::string& context) {
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
        fail(ExitCode::usage, "kubeconfig {} line {}: {}", path, e.mark.line + 1, e.msg);
    }
    // A scalar or a list has no fields: reading one would throw outside any usage error.
    if (!root.IsMap()) fail(ExitCode::usage, "kubeconfig {}: not a YAML mapping", path);
    fs::path dir = fs::path(path).parent_path();
    std::string context_name = context.empty() ? text_of(root, "current-context") : context;
    if (context_name.empty()) fail(ExitCode::usage, "kubeconfig {}: no current-context (pass --context)", path);

    try {
        YAML::Node context_node = named_entry(root, "contexts", "context", context_name, path);
        YAML::Node cluster = named_entry(root, "clusters", "cluster", text_of(context_node, "cluster"), path);
        YAML::Node user = named_entry(root, "users", "user", text_of(context_node, "user"), path);

        KubeConnection out;
        out.source = fmt::format("kubeconfig {} (context {})", path, context_name);
        out.server = text_of(cluster, "server");
        while (!out.server.empty() && out.server.back() == '/') out.server.pop_back();
        if (out.server.empty()) fail(ExitCode::usage, "kubeconfig {}: cluster of context {} has no server", path, context_name);
        out.namespace_name = text_of(context_node, "namespace");

        // insecure-skip-tls-verify is deliberately not honoured: the server is always verified.
        out.tls.ca_file = relative_to(text_of(cluster, "certificate-authority"), dir);
        if (auto data = text_of(cluster, "certificate-authority-data"); !data.empty())
            out.tls.ca_pem = decode_data(data, "certificate-authority-data", path);

        std::string user_where = fmt::format("kubeconfig {} user {}", path, text_of(context_node, "user"));
        if (user["auth-provider"])
            throw Error(ExitCode::usage, user_where + " uses an auth-provider plugin (removed from kubectl)",
                        "use the provider's exec plugin instead (e.g. gke-gcloud-auth-plugin, kubelogin)");
        out.tls.client_cert_file = relative_to(text_of(user, "client-certificate"), dir);
        out.tls.client_key_file = relative_to(text_of(user, "client-key"), dir);
        if (auto data = text_of(user, "client-certificate-data"); !data.empty())
            out.tls.client_cert_pem = decode_data(data, "client-certificate-data", path);
        if (auto data = text_of(user, "client-key-data"); !data.empty()) {
            std::string key = decode_data(data, "client-key-data", path);
            out.tls.client_key_pem.assign(key.begin(), key.end());
            Botan::secure_scrub_memory(key.data(), key.size());
        }
        bool has_certificate = !out.tls.client_cert_file.empty() || !out.tls.client_cert_pem.empty();
        // As client-go: a token or certificate in the kubeconfig wins over the user's exec plugin.
        if (std::string token = text_of(user, "token"); !token.empty()) {
            out.auth = std::make_shared<StaticAuth>(secret_of(token));
        } else if (std::string file = relative_to(text_of(user, "tokenFile"), dir); !file.empty()) {
            if (!fs::exists(file)) fail(ExitCode::usage, "kubeconfig {}: cannot read tokenFile {}", path, file);
            out.auth = std::make_shared<FileTokenAuth>(file, user_where);
        } else if (user["exec"] && !has_certificate) {
            out.auth = exec_auth(user["exec"], cluster, out.tls, dir, user_where);
        } else {
            out.auth = std::make_shared<StaticAuth>(SecretBytes());
        }
        return out;
    } catch (const YAML::Exception& e) {
        fail(ExitCode::usage, "kubeconfig {} line {}: {}", path, e.mark.line + 1, e.msg);
    }
}

namespace {

KubeConnection selected_connection(const config::Environment& env) {
    std::string context = env_or(env, context_variable);
    std::string list = env_or(env, "KUBECONFIG");
    if (!list.empty()) {
        // kubectl merges every file of the list; infra-keys uses the first one that exists.
        std::istringstream paths(list);
        for (std::string path; std::getline(paths, path, ':');)
            if (!path.empty() && fs::exists(path)) return kubeconfig_connection(path, context);
        fail(ExitCode::usage, "kubeconfig {} does not exist", list);
    }
    if (!env_or(env, "KUBERNETES_SERVICE_HOST").empty()) {
        if (!context.empty()) fail(ExitCode::usage, "--context {} names a kubeconfig context, but there is no kubeconfig", context);
        return in_cluster_connection(env);
    }
    std::string home = env_or(env, "HOME");
    std::string path = (fs::path(home) / ".kube" / "config").string();
    if (home.empty() || !fs::exists(path))
        fail(ExitCode::usage, "kubernetes: no kubeconfig (KUBECONFIG, ~/.kube/config) and not running in a cluster");
    return kubeconfig_connection(path, context);
}

}  // namespace

KubeConnection kube_connection(const config::Environment& env) {
    KubeConnection out = selected_connection(env);
    if (std::string name = env_or(env, namespace_variable); !name.empty()) out.namespace_name = name;
    return out;
}

}  // namespace ik::secrets
