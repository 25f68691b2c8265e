#include "net/http.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "net/libcurl.h"

#include "util/error.h"
#include "util/output.h"

namespace ik::net {
namespace {

constexpr size_t max_response_bytes = 16 * 1024 * 1024;

// libcurl copies headers (tokens) and bodies (keys) into its own buffers and frees them as they
// are: its every block is zeroed before it goes back to the heap, so no copy lingers in memory.
void scrubbed_free(void* block) {
    if (!block) return;
    Botan::secure_scrub_memory(block, ::malloc_usable_size(block));
    std::free(block);
}

void* scrubbed_realloc(void* block, size_t size) {
    if (!block) return std::malloc(size);
    size_t held = ::malloc_usable_size(block);
    if (size <= held && size != 0) return block;
    void* moved = size == 0 ? nullptr : std::malloc(size);
    if (size != 0 && !moved) return nullptr;  // realloc's contract: the old block stays valid
    if (moved) std::memcpy(moved, block, held);
    scrubbed_free(block);
    return moved;
}

char* scrubbed_strdup(const char* text) {
    size_t size = std::strlen(text) + 1;
    auto* copy = static_cast<char*>(std::malloc(size));
    if (copy) std::memcpy(copy, text, size);
    return copy;
}

void init_curl_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        libcurl().curl_global_init_mem(CURL_GLOBAL_DEFAULT, std::malloc, scrubbed_free, scrubbed_realloc,
                                       scrubbed_strdup, std::calloc);
    });
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string trim(std::string_view s) {
    size_t begin = s.find_first_not_of(" \t\r\n");
    if (begin == std::string_view::npos) return {};
    size_t end = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(begin, end - begin + 1));
}

size_t collect_body(char* data, size_t size, size_t count, void* user) {
    auto* body = static_cast<SecretString*>(user);
    size_t n = size * count;
    if (body->size() + n > max_response_bytes) return 0;  // curl then fails with CURLE_WRITE_ERROR
    body->append(data, n);
    return n;
}

size_t collect_header(char* data, size_t size, size_t count, void* user) {
    auto* headers = static_cast<Headers*>(user);
    size_t n = size * count;
    std::string_view line(data, n);
    // A new status line starts a new header block (redirects are off, but 100 Continue is not).
    if (line.rfind("HTTP/", 0) == 0) headers->clear();
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) headers->emplace_back(trim(line.substr(0, colon)), SecretString(trim(line.substr(colon + 1))));
    return n;
}

struct CurlDeleter {
    void operator()(CURL* c) const { libcurl().curl_easy_cleanup(c); }
    void operator()(curl_slist* l) const { libcurl().curl_slist_free_all(l); }
    void operator()(CURLU* u) const { libcurl().curl_url_cleanup(u); }
};

long retry_base_ms(const ClientOptions& options) {
    if (const char* env = std::getenv("INFRA_KEYS_HTTP_RETRY_BASE_MS")) {
        char* end = nullptr;
        long value = std::strtol(env, &end, 10);
        if (end != env && *end == '\0' && value >= 0) return value;
    }
    return options.retry_base_ms;
}

// Full jitter: a random delay in [base·2^attempt / 2, base·2^attempt].
long backoff_ms(long base, int attempt) {
    long ceiling = base << std::min(attempt, 10);
    if (ceiling <= 1) return ceiling;
    static thread_local std::mt19937 rng{std::random_device{}()};
    return std::uniform_int_distribution<long>(ceiling / 2, ceiling)(rng);
}

// Failures that a later attempt may not repeat. TLS verification failures, bad URLs and the
// like are deterministic and are never retried.
bool transient(CURLcode code) {
    switch (code) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
            return true;
        default:
            return false;
    }
}

// Failures before any byte of the request can have been acted on.
bool never_reached_service(CURLcode code) {
    return code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_COULDNT_CONNECT;
}

bool retryable_status(long status, bool idempotent) {
    if (status == 429) return true;
    return idempotent && status >= 500 && status <= 599;
}


void set_blob(CURL* curl, CURLoption option, const void* data, size_t size) {
    curl_blob blob{const_cast<void*>(data), size, CURL_BLOB_COPY};
    libcurl().curl_easy_setopt(curl, option, &blob);
}

void apply_tls(CURL* curl, const TlsOptions& tls) {
    // Verification is always on; there is deliberately no option to turn it off.
    libcurl().curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    libcurl().curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!tls.ca_file.empty()) libcurl().curl_easy_setopt(curl, CURLOPT_CAINFO, tls.ca_file.c_str());
    if (!tls.ca_pem.empty()) set_blob(curl, CURLOPT_CAINFO_BLOB, tls.ca_pem.data(), tls.ca_pem.size());
    if (!tls.client_cert_file.empty()) libcurl().curl_easy_setopt(curl, CURLOPT_SSLCERT, tls.client_cert_file.c_str());
    if (!tls.client_key_file.empty()) libcurl().curl_easy_setopt(curl, CURLOPT_SSLKEY, tls.client_key_file.c_str());
    if (!tls.client_cert_pem.empty()) {
        set_blob(curl, CURLOPT_SSLCERT_BLOB, tls.client_cert_pem.data(), tls.client_cert_pem.size());
        libcurl().curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (!tls.client_key_pem.empty()) {
        set_blob(curl, CURLOPT_SSLKEY_BLOB, tls.client_key_pem.data(), tls.client_key_pem.size());
        libcurl().curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
    }
}

struct Attempt {
    CURLcode code = CURLE_OK;
    std::string error;  // curl's own detail for `code`
    Response response;
};

Attempt attempt_once(const ClientOptions& options, const Request& request) {
    std::unique_ptr<CURL, CurlDeleter> curl(libcurl().curl_easy_init());
    if (!curl) fail(ExitCode::internal, "{}: cannot initialise libcurl", options.provider);
    CURL* c = curl.get();
    Attempt out;
    char error_buffer[CURL_ERROR_SIZE] = {0};

    libcurl().curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
    libcurl().curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    libcurl().curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    libcurl().curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect would carry our credentials elsewhere
    libcurl().curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, options.connect_timeout_ms);
    libcurl().curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, options.total_timeout_ms);
    libcurl().curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
    libcurl().curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    libcurl().curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent().c_str());
    if (request.method == "HEAD") libcurl().curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
        libcurl().curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
        libcurl().curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    }
    apply_tls(c, options.tls);

    curl_slist* list = nullptr;
    for (const auto& [name, value] : request.headers) {
        SecretString line = SecretString(name) + ": " + value;
        list = libcurl().curl_slist_append(list, line.c_str());
    }
    // curl adds "Expect: 100-continue" to larger bodies and "Accept: */*"; neither is wanted.
    list = libcurl().curl_slist_append(list, "Expect:");
    std::unique_ptr<curl_slist, CurlDeleter> header_list(list);
    libcurl().curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);

    libcurl().curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    libcurl().curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.response.body);
    libcurl().curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
    libcurl().curl_easy_setopt(c, CURLOPT_HEADERDATA, &out.response.headers);

    out.code = libcurl().curl_easy_perform(c);
    if (out.code != CURLE_OK) {
        out.error = error_buffer[0] ? std::string(error_buffer) : libcurl().curl_easy_strerror(out.code);
        if (out.code == CURLE_WRITE_ERROR) out.error = "response larger than 16 MiB";
        return out;
    }
    libcurl().curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.response.status);
    return out;
}

// Said once per address, however many requests and retries go there.
void warn_if_clear_text(const std::string& provider, const std::string& url) {
    if (!travels_in_clear(url)) return;
    static std::mutex mutex;
    static std::set<std::string> warned;
    std::string endpoint = endpoint_of(url);
    std::lock_guard lock(mutex);
    if (!warned.insert(endpoint).second) return;
    out::warn("{} {} is plain http: its token and key material travel unencrypted; use https", provider, endpoint);
}

}  // namespace

const std::string& user_agent() {
    static const std::string value = "infra-keys/" INFRA_KEYS_VERSION;
    return value;
}

std::string Response::header(const std::string& name) const {
    for (const auto& [key, value] : headers)
        if (equals_ignoring_case(key, name)) return std::string(value);
    return {};
}

Client::Client(ClientOptions options) : options_(std::move(options)) {
    init_curl_once();
    if (options_.attempts < 1) options_.attempts = 1;
}

std::string Client::where(const Request& request) const {
    return options_.provider + " " + endpoint_of(request.url);
}

Response Client::send(const Request& request) const {
    warn_if_clear_text(options_.provider, request.url);
    long base = retry_base_ms(options_);
    for (int attempt = 0;; ++attempt) {
        Attempt result = attempt_once(options_, request);
        bool last = attempt + 1 >= options_.attempts;
        long wait_ms = backoff_ms(base, attempt);
        if (result.code != CURLE_OK) {
            bool may_retry = transient(result.code) && (request.idempotent || never_reached_service(result.code));
            if (last || !may_retry) throw Error(ExitCode::provider, fmt::format("{}: {}", where(request), result.error));
        } else {
            if (last || !retryable_status(result.response.status, request.idempotent)) return std::move(result.response);
            wait_ms = std::max(wait_ms, retry_after_ms(result.response.header("Retry-After"), options_.retry_after_cap_ms));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    }
}

long retry_after_ms(std::string_view value, long cap_ms) {
    if (value.empty() || !std::all_of(value.begin(), value.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        return 0;
    // Compared digit by digit: a server's "Retry-After: 99999999999999999999" must not overflow.
    long seconds = 0;
    for (char c : value) {
        seconds = seconds * 10 + (c - '0');
        if (seconds > cap_ms / 1000) return cap_ms;
    }
    return std::min(seconds * 1000, cap_ms);
}

std::string endpoint_of(const std::string& url) {
    std::unique_ptr<CURLU, CurlDeleter> u(libcurl().curl_url());
    if (libcurl().curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return "(malformed URL)";
    libcurl().curl_url_set(u.get(), CURLUPART_QUERY, nullptr, 0);
    libcurl().curl_url_set(u.get(), CURLUPART_FRAGMENT, nullptr, 0);
    libcurl().curl_url_set(u.get(), CURLUPART_USER, nullptr, 0);
    libcurl().curl_url_set(u.get(), CURLUPART_PASSWORD, nullptr, 0);
    char* text = nullptr;
    if (libcurl().curl_url_get(u.get(), CURLUPART_URL, &text, 0) != CURLUE_OK) return "(malformed URL)";
    std::string out(text);
    libcurl().curl_free(text);
    return out;
}

namespace {
std::string url_part(const std::string& url, CURLUPart part, const std::string& fallback) {
    std::unique_ptr<CURLU, CurlDeleter> u(libcurl().curl_url());
    if (libcurl().curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
        fail(ExitCode::usage, "malformed URL {}", endpoint_of(url));
    char* text = nullptr;
    if (libcurl().curl_url_get(u.get(), part, &text, 0) != CURLUE_OK) return fallback;
    std::string out(text);
    libcurl().curl_free(text);
    return out;
}
}  // namespace

namespace {
// Loopback traffic never leaves the machine (Vault's dev server listens on http://127.0.0.1).
bool is_loopback(std::string host) {
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
    if (host == "localhost") return true;
    in_addr v4{};
    if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6{};
    if (host.size() > 2 && host.front() == '[' && host.back() == ']' &&
        ::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6);
    return false;
}
}  // namespace

bool travels_in_clear(const std::string& url) {
    std::unique_ptr<CURLU, CurlDeleter> u(libcurl().curl_url());
    if (libcurl().curl_url_set(u.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) return false;
    char* scheme = nullptr;
    char* host = nullptr;
    bool plain = false;
    if (libcurl().curl_url_get(u.get(), CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        libcurl().curl_url_get(u.get(), CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        plain = std::string_view(scheme) == "http" && !is_loopback(host);
    }
    libcurl().curl_free(scheme);
    libcurl().curl_free(host);
    return plain;
}

std::string host_of(const std::string& url) {
    std::string host = url_part(url, CURLUPART_HOST, "");
    std::string port = url_part(url, CURLUPART_PORT, "");
    return port.empty() ? host : host + ":" + port;
}

std::pair<std::string, std::string> path_and_query_of(const std::string& url) {
    std::string path = url_part(url, CURLUPART_PATH, "/");
    if (path.empty()) path = "/";
    return {path, url_part(url, CURLUPART_QUERY, "")};
}

std::string quote_service_text(std::string_view text, const std::vector<std::string_view>& secrets, size_t limit) {
    std::string out(text);
    for (std::string_view secret : secrets) {
        if (secret.empty()) continue;
        static constexpr std::string_view mark = "<redacted>";
        for (size_t at = out.find(secret); at != std::string::npos; at = out.find(secret, at + mark.size()))
            out.replace(at, secret.size(), mark);
    }
    for (auto& c : out)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (out.size() > limit) out = out.substr(0, limit) + "…";
    return trim(out);
}

std::string percent_encode(std::string_view text, bool keep_slash) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

}  // namespace ik::net
