#include "net/sigv4.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>
#include <vector>

#include <botan/hash.h>
#include <botan/hex.h>
#include <botan/mac.h>

namespace ik::net::sigv4 {
namespace {

constexpr const char* algorithm_name = "AWS4-HMAC-SHA256";

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string sha256_hex(std::string_view data) {
    auto hash = Botan::HashFunction::create_or_throw("SHA-256");
    hash->update(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    return Botan::hex_encode(hash->final(), false);
}

SecretBytes hmac(ByteView key, std::string_view data) {
    auto mac = Botan::MessageAuthenticationCode::create_or_throw("HMAC(SHA-256)");
    mac->set_key(key.data(), key.size());
    mac->update(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    return mac->final();
}

SecretBytes signing_key(const SecretBytes& secret, const Scope& scope) {
    SecretBytes k_secret(4);
    std::copy_n("AWS4", 4, k_secret.begin());
    k_secret.insert(k_secret.end(), secret.begin(), secret.end());
    SecretBytes k_date = hmac(k_secret, scope.amz_date.substr(0, 8));
    SecretBytes k_region = hmac(k_date, scope.region);
    SecretBytes k_service = hmac(k_region, scope.service);
    return hmac(k_service, "aws4_request");
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::vector<std::string> split(std::string_view s, char separator) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        size_t end = s.find(separator, start);
        parts.emplace_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
        if (end == std::string_view::npos) return parts;
        start = end + 1;
    }
}

// Lower-cased names, sorted; values of repeated headers joined with ',' in their order.
std::map<std::string, std::string> canonical_header_map(const Headers& headers) {
    std::map<std::string, std::string> out;
    for (const auto& [name, value] : headers) {
        std::string key = lower(name);
        std::string canonical = canonical_header_value(value);
        auto [it, inserted] = out.emplace(key, canonical);
        if (!inserted) it->second += "," + canonical;
    }
    return out;
}

bool has_header(const Headers& headers, std::string_view name) {
    return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return lower(h.first) == lower(name); });
}

}  // namespace

std::string canonical_uri(std::string_view path) {
    std::vector<std::string> segments;
    std::vector<std::string> parts = split(path, '/');
    for (const auto& part : parts) {
        if (part.empty() || part == ".") continue;
        if (part == "..") {
            if (!segments.empty()) segments.pop_back();
            continue;
        }
        segments.push_back(part);
    }
    // A path that ends in "/", "/." or "/.." names a directory: keep its trailing slash.
    const std::string& last = parts.back();
    bool directory = last.empty() || last == "." || last == "..";
    std::string out;
    for (const auto& segment : segments) out += "/" + percent_encode(segment);
    if (out.empty() || directory) out += "/";
    return out;
}

std::string canonical_query(std::string_view query) {
    if (query.empty()) return {};
    std::vector<std::pair<std::string, std::string>> parameters;
    for (const auto& part : split(query, '&')) {
        if (part.empty()) continue;
        size_t eq = part.find('=');
        std::string name = part.substr(0, eq);
        std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
        parameters.emplace_back(percent_encode(percent_decode(name)), percent_encode(percent_decode(value)));
    }
    std::sort(parameters.begin(), parameters.end());
    std::string out;
    for (const auto& [name, value] : parameters) out += (out.empty() ? "" : "&") + name + "=" + value;
    return out;
}

std::string canonical_header_value(std::string_view value) {
    std::string out;
    bool pending_space = false;
    for (char c : value) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            pending_space = !out.empty();
            continue;
        }
        if (pending_space) out += ' ';
        pending_space = false;
        out += c;
    }
    return out;
}

Signature sign(const Message& message, const Credentials& credentials, const Scope& scope) {
    Headers headers = message.headers;
    if (!credentials.session_token.empty() && !has_header(headers, "x-amz-security-token"))
        headers.emplace_back("X-Amz-Security-Token", SecretString(as_text(credentials.session_token)));
    auto canonical_headers = canonical_header_map(headers);

    Signature out;
    std::string header_block;
    for (const auto& [name, value] : canonical_headers) {
        header_block += name + ":" + value + "\n";
        out.signed_headers += (out.signed_headers.empty() ? "" : ";") + name;
    }
    out.canonical_request = message.method + "\n" + canonical_uri(message.path) + "\n" +
                            canonical_query(message.query) + "\n" + header_block + "\n" + out.signed_headers +
                            "\n" + sha256_hex(message.body);

    std::string credential_scope = scope.amz_date.substr(0, 8) + "/" + scope.region + "/" + scope.service + "/aws4_request";
    out.string_to_sign = std::string(algorithm_name) + "\n" + scope.amz_date + "\n" + credential_scope + "\n" +
                         sha256_hex(out.canonical_request);

    SecretBytes key = signing_key(credentials.secret_access_key, scope);
    std::string signature = Botan::hex_encode(hmac(key, out.string_to_sign), false);
    out.authorization = std::string(algorithm_name) + " Credential=" + credentials.access_key_id + "/" +
                        credential_scope + ", SignedHeaders=" + out.signed_headers + ", Signature=" + signature;
    return out;
}

std::string amz_date(std::chrono::system_clock::time_point when) {
    std::time_t t = std::chrono::system_clock::to_time_t(when);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y%m%dT%H%M%SZ", &utc);
    return buffer;
}

void sign_request(Request& request, const Credentials& credentials, const std::string& region,
                  const std::string& service, std::chrono::system_clock::time_point now) {
    Scope scope{region, service, amz_date(now)};
    // Sent explicitly so that what is signed is exactly what curl sends.
    request.headers.emplace_back("Host", host_of(request.url));
    request.headers.emplace_back("X-Amz-Date", scope.amz_date);
    if (!credentials.session_token.empty())
        request.headers.emplace_back("X-Amz-Security-Token", SecretString(as_text(credentials.session_token)));
    auto [path, query] = path_and_query_of(request.url);
    Message message{request.method, path, query, request.headers, request.body};
    request.headers.emplace_back("Authorization", sign(message, credentials, scope).authorization);
}

}  // namespace ik::net::sigv4
