#include "secrets/kube_exec.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>

#include <unistd.h>

#include <botan/mem_ops.h>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/subprocess.h"

namespace ik::secrets {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::system_clock;

constexpr const char* exec_info_variable = "KUBERNETES_EXEC_INFO";

void scrub(std::string& text) {
    Botan::secure_scrub_memory(text.data(), text.size());
    text.clear();
}

// The same rules client-go applies before it ever runs the plugin.
bool interactive_for(const ExecPlugin& plugin) {
    bool terminal = ::isatty(STDIN_FILENO) == 1;
    if (plugin.interactive_mode == "Never") return false;
    if (plugin.interactive_mode == "IfAvailable") return terminal;
    if (!terminal)
        fail(ExitCode::usage, "{}: exec plugin cannot support interactive mode: standard input is not a terminal",
             plugin.where);
    return true;
}

// The ExecCredential handed to the plugin in KUBERNETES_EXEC_INFO.
std::string exec_info(const ExecPlugin& plugin, bool interactive) {
    json spec = {{"interactive", interactive}};
    if (!plugin.cluster_json.empty()) spec["cluster"] = json::parse(plugin.cluster_json);
    return json{{"apiVersion", plugin.api_version}, {"kind", "ExecCredential"}, {"spec", spec}}.dump();
}

[[noreturn]] void fail_not_started(const ExecPlugin& plugin, int error) {
    std::string what = error == ENOENT ? "not found" : std::strerror(error);
    std::string hint = !plugin.install_hint.empty() ? plugin.install_hint
                       : plugin.command.find('/') == std::string::npos
                           ? "it is looked up in PATH; a command with a slash is relative to the kubeconfig's directory"
                           : "";
    throw Error(ExitCode::usage, fmt::format("{}: exec plugin: executable {} {}", plugin.where, plugin.command, what), hint);
}

ExecResult exec_plugin(const ExecPlugin& plugin) {
    bool interactive = interactive_for(plugin);
    // infra-keys' environment, then the kubeconfig's env entries, then KUBERNETES_EXEC_INFO, as
    // client-go builds it. A non-interactive plugin reads nothing: stdin is /dev/null.
    auto overrides = plugin.env;
    overrides.emplace_back(exec_info_variable, exec_info(plugin, interactive));
    std::vector<std::string> argv{plugin.command};
    argv.insert(argv.end(), plugin.args.begin(), plugin.args.end());
    subprocess::Run run = subprocess::run(argv, subprocess::environment_with(overrides), interactive);
    if (run.spawn_error != 0) fail_not_started(plugin, run.spawn_error);
    if (run.status != 0)
        fail(ExitCode::provider, "{}: exec plugin {} failed with {}", plugin.where, plugin.command,
             subprocess::describe_status(run.status));
    return parse_exec_credential(as_text(run.output), plugin);
}

class ExecAuth : public KubeAuth {
public:
    explicit ExecAuth(ExecPlugin plugin) : plugin_(std::move(plugin)) {}

    KubeCredential current() override {
        std::lock_guard lock(mutex_);
        if (!cached_ || (cached_->expires && Clock::now() > *cached_->expires)) cached_ = exec_plugin(plugin_);
        return cached_->credential;
    }
    bool renew() override {
        std::lock_guard lock(mutex_);
        cached_ = exec_plugin(plugin_);
        return true;
    }

private:
    ExecPlugin plugin_;
    std::mutex mutex_;
    std::optional<ExecResult> cached_;
};

std::string string_field(const json& object, const char* name) {
    auto it = object.find(name);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

SecretBytes take_secret(json& object, const char* name) {
    auto it = object.find(name);
    if (it == object.end() || !it->is_string()) return {};
    std::string& text = it->get_ref<std::string&>();
    SecretBytes out(text.begin(), text.end());
    scrub(text);
    return out;
}

[[noreturn]] void refuse_output(const ExecPlugin& plugin, const std::string& why) {
    fail(ExitCode::provider, "{}: exec plugin {} {}", plugin.where, plugin.command, why);
}

}  // namespace

std::optional<Clock::time_point> parse_rfc3339(const std::string& text) {
    std::tm tm{};
    const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) return std::nullopt;
    if (*rest == '.')
        for (++rest; *rest >= '0' && *rest <= '9';) ++rest;  // fractions of a second do not matter here
    long offset_seconds = 0;
    if (*rest == 'Z' || *rest == 'z') {
        ++rest;
    } else if (*rest == '+' || *rest == '-') {
        int hours = 0, minutes = 0, used = 0;
        if (std::sscanf(rest + 1, "%2d:%2d%n", &hours, &minutes, &used) != 2 || used != 5) return std::nullopt;
        offset_seconds = (hours * 3600L + minutes * 60L) * (*rest == '-' ? -1 : 1);
        rest += 6;
    } else {
        return std::nullopt;
    }
    if (*rest != '\0') return std::nullopt;
    std::time_t utc = ::timegm(&tm) - offset_seconds;
    // system_clock counts nanoseconds in 64 bits (up to 2262): a later date is "never".
    if (utc > 7'000'000'000) return Clock::time_point::max();
    return Clock::from_time_t(utc);
}

ExecResult parse_exec_credential(std::string_view stdout_text, const ExecPlugin& plugin) {
    json doc = json::parse(stdout_text, nullptr, false);
    if (!doc.is_object()) refuse_output(plugin, "did not print an ExecCredential (JSON object) on stdout");
    std::string version = string_field(doc, "apiVersion");
    if (version != plugin.api_version)
        refuse_output(plugin, fmt::format("is configured to use API version {}, plugin returned version {}", plugin.api_version,
                           version.empty() ? "(none)" : version));
    if (string_field(doc, "kind") != "ExecCredential") refuse_output(plugin, "returned a kind other than ExecCredential");
    auto status = doc.find("status");
    if (status == doc.end() || !status->is_object()) refuse_output(plugin, "didn't return a status field");

    ExecResult out;
    out.credential.token = take_secret(*status, "token");
    out.credential.client_key_pem = take_secret(*status, "clientKeyData");
    out.credential.client_cert_pem = string_field(*status, "clientCertificateData");
    if (out.credential.token.empty() && out.credential.client_cert_pem.empty() && out.credential.client_key_pem.empty())
        refuse_output(plugin, "didn't return a token or cert/key pair");
    if (out.credential.client_cert_pem.empty() != out.credential.client_key_pem.empty())
        refuse_output(plugin, "returned only certificate or key, not both");
    if (std::string stamp = string_field(*status, "expirationTimestamp"); !stamp.empty()) {
        out.expires = parse_rfc3339(stamp);
        if (!out.expires) refuse_output(plugin, fmt::format("returned a malformed expirationTimestamp \"{}\"", stamp));
    }
    return out;
}

std::shared_ptr<KubeAuth> make_exec_auth(ExecPlugin plugin) {
    static const char* group = "client.authentication.k8s.io/";
    if (plugin.api_version != std::string(group) + "v1" && plugin.api_version != std::string(group) + "v1beta1")
        fail(ExitCode::usage, "{}: exec plugin apiVersion \"{}\" is not {}v1 or {}v1beta1", plugin.where,
             plugin.api_version, group, group);
    if (plugin.command.empty()) fail(ExitCode::usage, "{}: exec plugin has no command", plugin.where);
    if (plugin.interactive_mode.empty()) {
        if (plugin.api_version == std::string(group) + "v1")
            fail(ExitCode::usage, "{}: interactiveMode must be specified to use exec authentication plugin {}",
                 plugin.where, plugin.command);
        plugin.interactive_mode = "IfAvailable";
    }
    if (plugin.interactive_mode != "Never" && plugin.interactive_mode != "IfAvailable" && plugin.interactive_mode != "Always")
        fail(ExitCode::usage, "{}: exec plugin interactiveMode \"{}\" is not Never, IfAvailable or Always", plugin.where,
             plugin.interactive_mode);
    return std::make_shared<ExecAuth>(std::move(plugin));
}

}  // namespace ik::secrets
