// AWS Signature Version 4 (header-based, HMAC-SHA256), as the AWS test suite defines it.
#pragma once

#include <chrono>
#include <string>

#include "net/http.h"
#include "util/bytes.h"

namespace ik::net::sigv4 {

struct Credentials {
    std::string access_key_id;
    SecretBytes secret_access_key;
    SecretBytes session_token;  // temporary credentials only; signed as X-Amz-Security-Token
};

struct Scope {
    std::string region;
    std::string service;
    std::string amz_date;  // 20150830T123600Z
};

// A request as it goes on the wire: `path` and `query` exactly as in the request target.
struct Message {
    std::string method;
    std::string path;
    std::string query;
    Headers headers;  // every header here is signed; Host and X-Amz-Date must be among them
    SecretString body;
};

struct Signature {
    std::string canonical_request;
    std::string string_to_sign;
    std::string signed_headers;
    std::string authorization;  // the Authorization header value
};

// Signs `message`. A session token in `credentials` that the headers do not already carry is
// signed as X-Amz-Security-Token (callers must then send that header too).
Signature sign(const Message& message, const Credentials& credentials, const Scope& scope);

// Canonical pieces, exposed for tests and for error messages while debugging a signer.
// Non-S3 rules: dot segments and empty segments removed, then each segment URI-encoded once.
std::string canonical_uri(std::string_view path);
// Parameters percent-decoded, re-encoded, sorted by name then value; "k" becomes "k=".
std::string canonical_query(std::string_view query);
// A header value: continuation lines folded, trimmed, runs of spaces collapsed to one.
std::string canonical_header_value(std::string_view value);

std::string amz_date(std::chrono::system_clock::time_point when);

// Adds Host, X-Amz-Date, X-Amz-Security-Token (if any) and Authorization to `request`.
void sign_request(Request& request, const Credentials& credentials, const std::string& region,
                  const std::string& service, std::chrono::system_clock::time_point now);

}  // namespace ik::net::sigv4
