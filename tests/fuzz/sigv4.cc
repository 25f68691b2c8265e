// SigV4 canonicalisation and signing (net/sigv4.h) and the HTTP helpers that read what a
// service sends (net/http.h): Retry-After, quoting service text, percent-encoding.
#include "fuzz.h"
#include "net/http.h"
#include "net/sigv4.h"

using namespace ik;

namespace {

// The input split on NUL bytes into the pieces of a request.
std::vector<std::string> pieces(std::string_view text, size_t count) {
    std::vector<std::string> out;
    while (out.size() + 1 < count) {
        size_t nul = text.find('\0');
        if (nul == std::string_view::npos) break;
        out.emplace_back(text.substr(0, nul));
        text.remove_prefix(nul + 1);
    }
    out.emplace_back(text);
    out.resize(count);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text = fuzz::text_of(data, size);
    auto p = pieces(text, 6);  // path, query, header name, header value, body, secret
    fuzz::expect_success_or_refusal([&] {
        long wait = net::retry_after_ms(p[3], 5000);
        fuzz::require(wait >= 0 && wait <= 5000, "Retry-After stays within its cap");
        net::quote_service_text(p[4], {p[5]}, 300);
        std::string encoded = net::percent_encode(p[0]);
        fuzz::require(encoded.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%") ==
                          std::string::npos,
                      "percent_encode leaves only unreserved characters");
        net::sigv4::canonical_uri(p[0]);
        net::sigv4::canonical_query(p[1]);
        net::sigv4::canonical_header_value(p[3]);
        net::sigv4::Message message{"POST", "/" + p[0], p[1],
                                    {{"Host", SecretString("kms.us-east-1.amazonaws.com")},
                                     {"X-Amz-Date", SecretString("20150830T123600Z")},
                                     {p[2], SecretString(p[3])}},
                                    SecretString(p[4])};
        net::sigv4::Credentials credentials{"AKIDEXAMPLE", SecretBytes(p[5].begin(), p[5].end()), {}};
        auto signature = net::sigv4::sign(message, credentials, {"us-east-1", "kms", "20150830T123600Z"});
        fuzz::require(signature.authorization.find("Signature=") != std::string::npos, "a signature is produced");
    });
    return 0;
}
