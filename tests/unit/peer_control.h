// For tests run by run_with_peers.py: where the peers are, and their /__peer/ control plane.
#pragma once

#include <cstdlib>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "net/http.h"

namespace ik::test {

inline std::string peer_env(const char* name) {
    const char* value = std::getenv(name);
    REQUIRE_MESSAGE(value, name << " is not set: run this binary through tests/unit/run_with_peers.py");
    return value;
}

class PeerControl {
public:
    PeerControl(std::string url, std::string ca_file = {}) : url_(std::move(url)), client_(options(std::move(ca_file))) {}

    nlohmann::json stats() { return call("GET", "stats", ""); }
    nlohmann::json dump() { return call("GET", "dump", ""); }
    void reset() { call("POST", "reset", "{}"); }
    void fail(const nlohmann::json& spec) { call("POST", "fail", spec.dump()); }
    nlohmann::json control(const nlohmann::json& body) { return call("POST", "control", body.dump()); }
    // Requests the service itself answered (faults included) for operation `op`.
    int count(const std::string& op) { return stats()["ops"].value(op, 0); }

private:
    static net::ClientOptions options(std::string ca_file) {
        net::ClientOptions o;
        o.provider = "peer";
        o.tls.ca_file = std::move(ca_file);
        o.attempts = 1;
        return o;
    }
    nlohmann::json call(const std::string& method, const std::string& action, const std::string& body) {
        net::Request request{method, url_ + "/__peer/" + action, {{"Content-Type", "application/json"}}, SecretString(body)};
        net::Response response = client_.send(request);
        REQUIRE_MESSAGE(response.status == 200, "peer control " << action << ": HTTP " << response.status << " " << response.body);
        return nlohmann::json::parse(response.body);
    }
    std::string url_;
    net::Client client_;
};

}  // namespace ik::test
