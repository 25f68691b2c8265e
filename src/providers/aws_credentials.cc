#include "providers/aws_credentials.h"

#include <chrono>
#include <fstream>

#include <botan/mem_ops.h>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/files.h"
#include "util/subprocess.h"

namespace ik::providers {
namespace {

using json = nlohmann::json;
using net::sigv4::Credentials;

using config::env_or;

std::string trim(const std::string& s) {
    size_t begin = s.find_first_not_of(" \t\r\n");
    if (begin == std::string::npos) return {};
    return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

SecretBytes secret_of(std::string& text) {
    SecretBytes out(text.begin(), text.end());
    scrub(text);
    return out;
}

// A file holding a token (a projected service account token, a Pod Identity token).
SecretBytes read_token_file(const std::string& path, const std::string& what) {
    auto token = files::read_token(path);
    if (!token) fail(ExitCode::usage, "awskms key provider: cannot read {} {}", what, path);
    if (token->empty()) fail(ExitCode::usage, "awskms key provider: {} {} is empty", what, path);
    return std::move(*token);
}

std::string xml_unescape(std::string text) {
    static const std::pair<const char*, const char*> entities[] = {
        {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}};
    for (const auto& [entity, character] : entities)
        for (size_t at = text.find(entity); at != std::string::npos; at = text.find(entity, at + 1))
            text.replace(at, std::string_view(entity).size(), character);
    return text;
}

// The text of the first <tag>…</tag> in `xml` (STS answers carry no attributes on these).
std::string xml_text(std::string_view xml, const std::string& tag) {
    std::string open = "<" + tag + ">", close = "</" + tag + ">";
    size_t begin = xml.find(open);
    if (begin == std::string_view::npos) return {};
    begin += open.size();
    size_t end = xml.find(close, begin);
    if (end == std::string_view::npos) return {};
    return xml_unescape(std::string(xml.substr(begin, end - begin)));
}

std::string sts_endpoint(const config::Environment& env, const std::string& region) {
    std::string endpoint = env_or(env, "AWS_ENDPOINT_URL_STS", env_or(env, "AWS_ENDPOINT_URL"));
    if (endpoint.empty()) endpoint = "https://sts." + region + ".amazonaws.com";
    if (endpoint.find("://") == std::string::npos) endpoint = "https://" + endpoint;
    if (endpoint.back() != '/' && endpoint.find('/', endpoint.find("://") + 3) == std::string::npos) endpoint += "/";
    return endpoint;
}

// STS AssumeRoleWithWebIdentity (query API): unsigned, the token is the credential.
Credentials assume_role_with_web_identity(const config::Environment& env, const std::string& role_arn,
                                          const std::string& token_file, const std::string& session_name,
                                          const std::string& region, const net::TlsOptions& tls) {
    SecretBytes token = read_token_file(token_file, "web identity token file");
    net::Client client(net::ClientOptions{"awskms", tls});
    net::Request request{"POST", sts_endpoint(env, region),
                         {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}}, {}};
    request.body = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + net::percent_encode(role_arn) +
                   "&RoleSessionName=" + net::percent_encode(session_name) +
                   "&WebIdentityToken=" + net::percent_encode(as_text(token));
    net::Response response = client.send(request);  // request and response bodies scrub themselves (SecretString)
    std::string where = fmt::format("{}: STS AssumeRoleWithWebIdentity for {}", client.where(request), role_arn);
    if (response.status != 200) {
        std::string code = xml_text(response.body, "Code"), message = xml_text(response.body, "Message");
        std::string text = code.empty() ? fmt::format("HTTP {}", response.status) : code + ": " + message;
        fail(ExitCode::provider, "{}: {}", where, net::quote_service_text(text, {as_text(token)}));
    }
    return sts_credentials_of(response.body, where);
}

// The JSON both credential_process and the container endpoint print; `token_field` is
// SessionToken for the former and Token for the latter.
Credentials credentials_from_json(std::string_view text, const char* token_field, const std::string& where) {
    json doc = json::parse(text, nullptr, false);
    if (!doc.is_object()) fail(ExitCode::provider, "{}: the answer is not a JSON object", where);
    auto take = [&doc](const char* field) {
        auto it = doc.find(field);
        if (it == doc.end() || !it->is_string()) return std::string();
        std::string value = it->get<std::string>();
        scrub(it->get_ref<std::string&>());
        return value;
    };
    std::string id = take("AccessKeyId"), secret = take("SecretAccessKey");
    if (id.empty() || secret.empty()) fail(ExitCode::provider, "{}: the answer has no AccessKeyId and SecretAccessKey", where);
    std::string token = take(token_field);
    return {id, secret_of(secret), secret_of(token)};
}

Credentials credential_process(const std::string& command, const std::string& profile) {
    std::string where = fmt::format("awskms key provider: credential_process of profile {}", profile);
    std::vector<std::string> argv = split_command_line(command);
    if (argv.empty()) fail(ExitCode::usage, "{} is empty", where);
    subprocess::Run run = subprocess::run(argv, subprocess::environment_with({}), /*inherit_stdin=*/false);
    if (run.spawn_error != 0)
        fail(ExitCode::usage, "{}: cannot run {}: {}", where, argv[0],
             run.spawn_error == ENOENT ? "not found" : std::strerror(run.spawn_error));
    if (run.status != 0) fail(ExitCode::provider, "{}: {} failed with {}", where, argv[0], subprocess::describe_status(run.status));
    json version = json::parse(as_text(run.output), nullptr, false);
    if (!version.is_object() || version.value("Version", 0) != 1)
        fail(ExitCode::provider, "{}: {} did not print JSON with \"Version\": 1", where, argv[0]);
    return credentials_from_json(as_text(run.output), "SessionToken", where);
}

bool is_loopback_or_container_host(const std::string& url) {
    std::string host = net::host_of(url);
    if (size_t colon = host.rfind(':'); colon != std::string::npos && host.find(']') == std::string::npos) host.resize(colon);
    return host.rfind("127.", 0) == 0 || host == "localhost" || host == "[::1]" || host == "169.254.170.2" ||
           host == "169.254.170.23" || host == "[fd00:ec2::23]";
}

// ECS task roles and EKS Pod Identity: GET the URI, with the agent's token as Authorization.
Credentials container_credentials(const config::Environment& env, const net::TlsOptions& tls) {
    std::string url = env_or(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (url.empty()) url = "http://169.254.170.2" + env_or(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    // As the SDKs: plain http only to the loopback or the ECS/EKS agents' link-local addresses.
    if (url.rfind("https://", 0) != 0 && !is_loopback_or_container_host(url))
        fail(ExitCode::usage, "awskms key provider: AWS_CONTAINER_CREDENTIALS_FULL_URI {} must be https or a loopback address",
             net::endpoint_of(url));
    SecretBytes token;
    if (std::string file = env_or(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); !file.empty()) {
        token = read_token_file(file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    } else {
        std::string value = env_or(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
        token = secret_of(value);
    }
    net::Client client(net::ClientOptions{"awskms", tls});
    net::Request request{"GET", url, {{"Accept", "application/json"}}, {}};
    if (!token.empty()) request.headers.emplace_back("Authorization", std::string(as_text(token)));
    net::Response response = client.send(request);
    std::string where = fmt::format("{}: container credentials", client.where(request));
    if (response.status != 200)
        fail(ExitCode::provider, "{}: HTTP {} {}", where, response.status,
             net::quote_service_text(response.body, {as_text(token)}));
    return credentials_from_json(response.body, "Token", where);
}

std::string session_name(const config::Environment& env) {
    std::string name = env_or(env, "AWS_ROLE_SESSION_NAME");
    if (!name.empty()) return name;
    auto now = std::chrono::system_clock::now().time_since_epoch();
    return fmt::format("infra-keys-{}", std::chrono::duration_cast<std::chrono::seconds>(now).count());
}

}  // namespace

std::map<std::string, std::string> ini_section(const std::string& path, const std::string& section) {
    std::map<std::string, std::string> out;
    std::ifstream in(path);
    bool inside = false;
    for (std::string line; std::getline(in, line);) {
        line = trim(line);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line.front() == '[' && line.back() == ']') {
            inside = trim(line.substr(1, line.size() - 2)) == section;
            continue;
        }
        size_t eq = line.find('=');
        if (inside && eq != std::string::npos) out[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
    }
    return out;
}

Credentials sts_credentials_of(std::string_view xml, const std::string& where) {
    std::string credentials = xml_text(xml, "Credentials");
    std::string id = xml_text(credentials, "AccessKeyId"), secret = xml_text(credentials, "SecretAccessKey");
    std::string token = xml_text(credentials, "SessionToken");
    scrub(credentials);
    if (id.empty() || secret.empty() || token.empty())
        fail(ExitCode::provider, "{}: the answer has no Credentials", where);
    return {id, secret_of(secret), secret_of(token)};
}

std::vector<std::string> split_command_line(const std::string& command) {
    std::vector<std::string> words;
    std::string word;
    bool in_word = false;
    char quote = 0;
    for (size_t i = 0; i < command.size(); ++i) {
        char c = command[i];
        if (quote == '\'') {
            if (c == '\'') quote = 0; else word += c;
        } else if (quote == '"') {
            if (c == '"') quote = 0;
            else if (c == '\\' && i + 1 < command.size() && std::string_view("\"\\$`").find(command[i + 1]) != std::string_view::npos) word += command[++i];
            else word += c;
        } else if (c == '\'' || c == '"') {
            quote = c;
            in_word = true;
        } else if (c == '\\' && i + 1 < command.size()) {
            word += command[++i];
            in_word = true;
        } else if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) words.push_back(std::move(word));
            word.clear();
            in_word = false;
        } else {
            word += c;
            in_word = true;
        }
    }
    if (quote) fail(ExitCode::usage, "awskms key provider: credential_process has an unterminated quote");
    if (in_word) words.push_back(std::move(word));
    return words;
}

Credentials aws_default_credentials(const config::Environment& env, const std::string& home, const std::string& region,
                                    const net::TlsOptions& tls) {
    std::string id = env_or(env, "AWS_ACCESS_KEY_ID"), secret = env_or(env, "AWS_SECRET_ACCESS_KEY");
    if (!id.empty() && !secret.empty()) {
        std::string token = env_or(env, "AWS_SESSION_TOKEN");
        return {id, secret_of(secret), secret_of(token)};
    }

    std::string role_arn = env_or(env, "AWS_ROLE_ARN"), token_file = env_or(env, "AWS_WEB_IDENTITY_TOKEN_FILE");
    if (!role_arn.empty() && !token_file.empty())
        return assume_role_with_web_identity(env, role_arn, token_file, session_name(env), region, tls);

    std::string profile = env_or(env, "AWS_PROFILE", "default");
    auto credentials = ini_section(env_or(env, "AWS_SHARED_CREDENTIALS_FILE", home + "/.aws/credentials"), profile);
    auto config = ini_section(env_or(env, "AWS_CONFIG_FILE", home + "/.aws/config"),
                              profile == "default" ? "default" : "profile " + profile);
    for (auto* section : {&credentials, &config}) {
        auto& s = *section;
        if (!s["aws_access_key_id"].empty() && !s["aws_secret_access_key"].empty())
            return {s["aws_access_key_id"], secret_of(s["aws_secret_access_key"]), secret_of(s["aws_session_token"])};
    }
    for (auto* section : {&credentials, &config}) {
        auto& s = *section;
        if (!s["role_arn"].empty() && !s["web_identity_token_file"].empty())
            return assume_role_with_web_identity(env, s["role_arn"], s["web_identity_token_file"],
                                                 s["role_session_name"].empty() ? session_name(env) : s["role_session_name"],
                                                 region, tls);
        if (!s["credential_process"].empty()) return credential_process(s["credential_process"], profile);
    }
    if (!env_or(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI").empty() ||
        !env_or(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").empty())
        return container_credentials(env, tls);
    throw Error(ExitCode::usage, "awskms key provider: no AWS credentials found",
                "set accessKeyID and secretAccessKey in the keys entry, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, a profile in ~/.aws (AWS_PROFILE) with keys, "
                "credential_process or web_identity_token_file, or AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

}  // namespace ik::providers
