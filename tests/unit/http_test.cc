// The libcurl wrapper against the Vault peer (HTTPS): retries, no retries, timeouts, TLS trust.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <iterator>

#include "net/http.h"
#include "peer_control.h"
#include "util/error.h"

using namespace ik;
using ik::test::peer_env;

namespace {

net::ClientOptions trusting_peer(int attempts = 4) {
    net::ClientOptions options;
    options.provider = "vault";
    options.tls.ca_file = peer_env("IK_PEER_VAULT_CA");
    options.attempts = attempts;
    return options;
}

net::Request health() { return {"GET", peer_env("IK_PEER_VAULT_URL") + "/v1/sys/health", {}, {}}; }

test::PeerControl vault_peer() { return test::PeerControl(peer_env("IK_PEER_VAULT_URL"), peer_env("IK_PEER_VAULT_CA")); }

int total_requests(test::PeerControl& peer) { return peer.stats()["total"].get<int>(); }

}  // namespace

TEST_CASE("a 503 answered twice is retried and the third attempt succeeds") {
    auto peer = vault_peer();
    peer.reset();
    peer.fail({{"status", 503}, {"times", 2}});
    net::Response response = net::Client(trusting_peer()).send(health());
    CHECK(response.status == 200);
    CHECK(total_requests(peer) == 3);
}

TEST_CASE("a 429 is retried and a Retry-After header is honoured") {
    auto peer = vault_peer();
    peer.reset();
    peer.fail({{"status", 429}, {"times", 1}, {"retry_after", 1}});
    auto options = trusting_peer();
    options.retry_after_cap_ms = 300;  // the header says 1 s; the cap keeps the test fast
    auto start = std::chrono::steady_clock::now();
    CHECK(net::Client(options).send(health()).status == 200);
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(300));
    CHECK(total_requests(peer) == 2);
}

TEST_CASE("retries stop after the configured number of attempts and the last answer is returned") {
    auto peer = vault_peer();
    peer.reset();
    peer.fail({{"status", 500}, {"times", 10}});
    CHECK(net::Client(trusting_peer(4)).send(health()).status == 500);
    CHECK(total_requests(peer) == 4);
}

TEST_CASE("a 403 is never retried") {
    auto peer = vault_peer();
    peer.reset();
    peer.fail({{"status", 403}, {"times", 5}});
    CHECK(net::Client(trusting_peer()).send(health()).status == 403);
    CHECK(total_requests(peer) == 1);
}

TEST_CASE("a 503 to a request that must not run twice is not retried") {
    auto peer = vault_peer();
    peer.reset();
    peer.fail({{"status", 503}, {"times", 5}});
    net::Request request = health();
    request.idempotent = false;
    CHECK(net::Client(trusting_peer()).send(request).status == 503);
    CHECK(total_requests(peer) == 1);
}

TEST_CASE("an answer slower than the total timeout is a provider error naming the endpoint") {
    auto peer = vault_peer();
    peer.reset();
    peer.fail({{"delay_ms", 1500}, {"times", 1}});
    auto options = trusting_peer(1);
    options.total_timeout_ms = 300;
    net::Request request = health();
    request.url += "?secret-looking=query";
    try {
        net::Client(options).send(request);
        FAIL("no timeout");
    } catch (const Error& e) {
        std::string message = e.what();
        CHECK(e.code() == ExitCode::provider);
        CHECK(message.rfind("vault " + peer_env("IK_PEER_VAULT_URL") + "/v1/sys/health: ", 0) == 0);
        CHECK(message.find("imed out") != std::string::npos);
        CHECK(message.find("secret-looking") == std::string::npos);
    }
    peer.reset();
}

TEST_CASE("a server whose certificate no trusted CA signed is refused") {
    net::ClientOptions options = trusting_peer(3);
    options.tls.ca_file.clear();  // the system CAs do not know the peer's CA
    auto peer = vault_peer();
    peer.reset();
    try {
        net::Client(options).send(health());
        FAIL("TLS verification passed without the CA");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::provider);
        CHECK(std::string(e.what()).find("certificate") != std::string::npos);
    }
    CHECK(total_requests(peer) == 0);  // no attempt got past the handshake, and none was repeated
}

TEST_CASE("the CA can be given as PEM text instead of a file") {
    std::ifstream in(peer_env("IK_PEER_VAULT_CA"));
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    net::ClientOptions options = trusting_peer();
    options.tls.ca_file.clear();
    options.tls.ca_pem = pem;
    CHECK(net::Client(options).send(health()).status == 200);
}

TEST_CASE("a refused connection is retried, then reported as a provider error") {
    net::ClientOptions options;
    options.provider = "awskms";
    options.attempts = 2;
    // Port 1 on loopback: nothing listens there.
    try {
        net::Client(options).send({"POST", "http://127.0.0.1:1/", {}, "{}"});
        FAIL("connected to port 1");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::provider);
        CHECK(std::string(e.what()).rfind("awskms http://127.0.0.1:1/: ", 0) == 0);
    }
}

TEST_CASE("service text quoted in a message has secrets redacted and is kept to one line") {
    CHECK(net::quote_service_text("bad token abc123\nsee abc123", {"abc123", ""}) == "bad token <redacted> see <redacted>");
    CHECK(net::quote_service_text(std::string(400, 'x'), {}, 10) == "xxxxxxxxxx…");
}

TEST_CASE("URL helpers keep host and port and drop the query") {
    CHECK(net::host_of("https://kms.eu-west-1.amazonaws.com/") == "kms.eu-west-1.amazonaws.com");
    CHECK(net::host_of("http://127.0.0.1:8200/v1") == "127.0.0.1:8200");
    CHECK(net::endpoint_of("https://user:pw@h:1/p?q=1") == "https://h:1/p");
    CHECK(net::path_and_query_of("https://h/a/b?x=1") == std::pair<std::string, std::string>{"/a/b", "x=1"});
}

TEST_CASE("a Retry-After of any size is clamped to the cap instead of overflowing") {
    CHECK(net::retry_after_ms("2", 5000) == 2000);
    CHECK(net::retry_after_ms("5", 5000) == 5000);
    CHECK(net::retry_after_ms("6", 5000) == 5000);
    CHECK(net::retry_after_ms("9223372036854775807", 5000) == 5000);
    CHECK(net::retry_after_ms("99999999999999999999999999999999", 5000) == 5000);
    CHECK(net::retry_after_ms("0000000000000000000000000000000001", 5000) == 1000);
    CHECK(net::retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 5000) == 0);
    CHECK(net::retry_after_ms("", 5000) == 0);
    CHECK(net::retry_after_ms("-1", 5000) == 0);
}

TEST_CASE("a plain http address that is not loopback is recognised as sending tokens in clear") {
    CHECK(net::travels_in_clear("http://vault.example.com:8200"));
    CHECK(net::travels_in_clear("HTTP://10.0.0.5/v1"));
    CHECK(net::travels_in_clear("http://[fd00::2]:8200"));
    CHECK(net::travels_in_clear("http://127.example.com/"));
    CHECK_FALSE(net::travels_in_clear("https://vault.example.com:8200"));
    CHECK_FALSE(net::travels_in_clear("http://127.0.0.1:8200"));
    CHECK_FALSE(net::travels_in_clear("http://localhost:8200"));
    CHECK_FALSE(net::travels_in_clear("http://[::1]:8200"));
    CHECK_FALSE(net::travels_in_clear("not a url"));
}
