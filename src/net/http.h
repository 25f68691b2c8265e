// The one HTTP client of infra-keys (libcurl): TLS always verified, timeouts, bounded retries.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/bytes.h"

namespace ik::net {

// Values may be tokens (X-Vault-Token, Authorization): kept in memory that is zeroed when freed.
using Headers = std::vector<std::pair<std::string, SecretString>>;

struct Request {
    std::string method = "GET";
    std::string url;
    Headers headers;
    SecretString body;  // may carry key material (a base64 db key)
    // False for requests that must not run twice (Vault key rotation): then only failures that
    // surely never reached the service (connect errors, 429) are retried.
    bool idempotent = true;
};

struct Response {
    long status = 0;
    Headers headers;  // names as the server sent them
    SecretString body;  // may carry key material (a base64 db key)
    // The first header of that name (case-insensitive), or "".
    std::string header(const std::string& name) const;
};

// Where trust comes from. Files and in-memory PEM are alternatives; empty means "not given".
struct TlsOptions {
    std::string ca_file;           // PEM bundle; empty → the system's CAs
    std::string ca_pem;            // PEM text (kubeconfig certificate-authority-data)
    std::string client_cert_file;  // PEM
    std::string client_key_file;   // PEM
    std::string client_cert_pem;
    SecretBytes client_key_pem;
};

struct ClientOptions {
    std::string provider;  // "awskms", "vault", "kubernetes": the first word of every error
    TlsOptions tls;
    long connect_timeout_ms = 5000;
    long total_timeout_ms = 30000;
    int attempts = 4;
    // Base of the exponential backoff; env INFRA_KEYS_HTTP_RETRY_BASE_MS overrides it (tests).
    long retry_base_ms = 200;
    // A Retry-After header is honoured up to this many milliseconds.
    long retry_after_cap_ms = 5000;
};

class Client {
public:
    explicit Client(ClientOptions options);

    // Sends `request`, retrying connection errors, 429 and 5xx with backoff and jitter.
    // Returns the final response whatever its status (the caller reads the service's own
    // error text). Throws ik::Error(provider) "<provider> <endpoint>: <curl error>" when no
    // response came at all.
    Response send(const Request& request) const;

    // "<provider> <scheme://host/path>" (no query string, no credentials) for error messages.
    std::string where(const Request& request) const;
    const ClientOptions& options() const { return options_; }

private:
    ClientOptions options_;
};

// The wait a Retry-After header value (delay-seconds) asks for, in ms, at most `cap_ms`; 0 for
// anything else (an HTTP date, garbage).
long retry_after_ms(std::string_view value, long cap_ms);

// True for an http:// URL whose host is not loopback: what is sent there can be read on the way.
// Client::send warns once per such address.
bool travels_in_clear(const std::string& url);

// "infra-keys/<version>": the User-Agent of every request, so a KMS or Vault audit log names us.
const std::string& user_agent();

// "https://host:port/path?q" → "https://host:port/path" (drops userinfo too).
std::string endpoint_of(const std::string& url);
// The Host header value curl sends for `url`: host, plus ":port" when the URL names one.
std::string host_of(const std::string& url);
// Path and query of `url` ("/" when empty), split: {"/a/b", "x=1"}.
std::pair<std::string, std::string> path_and_query_of(const std::string& url);

// `text` with every occurrence of each non-empty secret replaced by "<redacted>", newlines
// folded and cut to `limit` characters: for quoting a service's error text in a message.
std::string quote_service_text(std::string_view text, const std::vector<std::string_view>& secrets, size_t limit = 300);

// Percent-encoding as RFC 3986 unreserved characters allow (A–Z a–z 0–9 - . _ ~ stay).
std::string percent_encode(std::string_view text, bool keep_slash = false);

}  // namespace ik::net
