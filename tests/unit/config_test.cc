// The server configuration as infra-keys reads it: defaults, YAML shapes, Helm values, env overrides, errors.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <unistd.h>

#include <doctest/doctest.h>

#include "config/config.h"
#include "util/error.h"

using namespace ik;
using config::Config;

namespace {

config::Environment env_of(std::map<std::string, std::string> vars) {
    if (!vars.count("HOME")) vars["HOME"] = "/home/op";
    return [vars](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

Config parse(const std::string& yaml, std::map<std::string, std::string> vars = {}) {
    return config::parse(yaml, "/etc/infra.yaml", env_of(std::move(vars)));
}

// The message of the usage error `yaml` raises; fails the test if it raises none or another kind.
std::string usage_error(const std::string& yaml, std::map<std::string, std::string> vars = {}) {
    try {
        parse(yaml, std::move(vars));
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::usage);
        return e.what();
    }
    FAIL("expected a usage error");
    return {};
}

}  // namespace

TEST_CASE("with no config file the defaults are the server's, under HOME") {
    Config cfg = config::load(std::nullopt, env_of({{"HOME", "/home/op"}}));
    CHECK(cfg.source.empty());
    CHECK(cfg.home == "/home/op");
    CHECK(cfg.db_file == "/home/op/.infra/sqlite3.db");
    CHECK(cfg.db_encryption_key == "/home/op/.infra/sqlite3.db.key");
    CHECK(cfg.db_encryption_key_provider == "native");
    CHECK_FALSE(cfg.uses_postgres());
    CHECK(cfg.active_provider().kind == "native");
    CHECK(cfg.active_provider().options.empty());
    CHECK(cfg.warnings.empty());
}

TEST_CASE("tilde paths are expanded with HOME and relative paths made absolute") {
    Config cfg = parse("dbFile: ~/data/infra.db\ndbEncryptionKey: keys/root.key\n", {{"HOME", "/srv/infra"}});
    CHECK(cfg.db_file == "/srv/infra/data/infra.db");
    CHECK(cfg.db_encryption_key == (std::filesystem::current_path() / "keys/root.key").string());
}

TEST_CASE("yaml keys are matched case-insensitively") {
    Config cfg = parse("DBFILE: /a.db\ndbencryptionKEY: /a.key\nDbHost: pg\ndbPort: 5433\ndbName: infra\n"
                       "dbUsername: u\ndbPassword: env:PGPASS\ndbParameters: sslmode=require\n");
    CHECK(cfg.db_file == "/a.db");
    CHECK(cfg.db_encryption_key == "/a.key");
    CHECK(cfg.uses_postgres());
    CHECK(cfg.db_host == "pg");
    CHECK(cfg.db_port == 5433);
    CHECK(cfg.db_name == "infra");
    CHECK(cfg.db_username == "u");
    CHECK(cfg.db_password == "env:PGPASS");
    CHECK(cfg.db_parameters == "sslmode=require");
}

TEST_CASE("INFRA_SERVER_ environment variables override the file") {
    Config cfg = parse("dbFile: /from/file.db\ndbEncryptionKey: /from/file.key\ndbPort: 1\n",
                       {{"INFRA_SERVER_DB_FILE", "/from/env.db"},
                        {"INFRA_SERVER_DB_ENCRYPTION_KEY", "/from/env.key"},
                        {"INFRA_SERVER_DB_HOST", "db.internal"},
                        {"INFRA_SERVER_DB_PORT", "6543"},
                        {"INFRA_SERVER_DB_PASSWORD", "file:/run/pg"}});
    CHECK(cfg.db_file == "/from/env.db");
    CHECK(cfg.db_encryption_key == "/from/env.key");
    CHECK(cfg.db_host == "db.internal");
    CHECK(cfg.db_port == 6543);
    CHECK(cfg.db_password == "file:/run/pg");
}

TEST_CASE("an environment provider override selects that keys entry") {
    Config cfg = parse("keys:\n  - kind: vault\n    config: {address: https://v, token: env:T}\n",
                       {{"INFRA_SERVER_DB_ENCRYPTION_KEY_PROVIDER", "vault"},
                        {"INFRA_SERVER_DB_ENCRYPTION_KEY", "infra-root"}});
    auto provider = cfg.active_provider();
    CHECK(provider.kind == "vault");
    CHECK(provider.get("address") == "https://v");
    // A transit key name is kept as written, not turned into a path.
    CHECK(cfg.db_encryption_key == "infra-root");
}

TEST_CASE("a kms key id is not made absolute") {
    Config cfg = parse("dbEncryptionKeyProvider: awskms\ndbEncryptionKey: alias/infra\n"
                       "keys:\n  - kind: awskms\n    config:\n      region: us-east-1\n");
    CHECK(cfg.db_encryption_key == "alias/infra");
    CHECK(cfg.active_provider().get("region") == "us-east-1");
}

TEST_CASE("a Helm values file is read from server.config with the chart's defaults") {
    Config cfg = parse("global: {}\nserver:\n  replicas: 1\n  config:\n    dbHost: postgres\n");
    CHECK(cfg.db_host == "postgres");
    CHECK(cfg.db_file == "/var/lib/infrahq/server/sqlite3.db");
    CHECK(cfg.db_encryption_key == "/var/lib/infrahq/server/sqlite3.db.key");
    CHECK(cfg.warnings.empty());
}

TEST_CASE("a Helm values file keeps the paths it sets and drops server.config.keys with a warning") {
    Config cfg = parse("server:\n  config:\n    dbEncryptionKey: /keys/root\n"
                       "    keys:\n      - kind: awskms\n        config: {region: x}\n");
    CHECK(cfg.db_encryption_key == "/keys/root");
    CHECK(cfg.keys.empty());
    REQUIRE(cfg.warnings.size() == 1);
    CHECK(cfg.warnings[0].find("line 4") != std::string::npos);
    CHECK(cfg.warnings[0].find("server.config.keys") != std::string::npos);
}

TEST_CASE("keys entries are read flat or nested, lower-casing their options") {
    Config cfg = parse(
        "keys:\n"
        "  - kind: awskms\n"
        "    endpoint: https://kms\n"
        "    accessKeyID: kubernetes:awskms/accessKeyID\n"
        "  - kind: native\n"
        "    config:\n"
        "      secretProvider: kubernetes\n");
    REQUIRE(cfg.keys.size() == 2);
    CHECK(cfg.keys[0].kind == "awskms");
    CHECK(cfg.keys[0].get("endpoint") == "https://kms");
    CHECK(cfg.keys[0].get("accesskeyid") == "kubernetes:awskms/accessKeyID");
    CHECK(cfg.keys[0].line == 2);
    CHECK(cfg.keys[1].get("secretprovider") == "kubernetes");
}

TEST_CASE("only a flat keys entry draws the server-ignores-it warning") {
    Config cfg = parse("keys:\n  - kind: awskms\n    region: us-east-1\n  - kind: vault\n    config: {address: a}\n");
    REQUIRE(cfg.warnings.size() == 1);
    CHECK(cfg.warnings[0].find("keys[0]") != std::string::npos);
    CHECK(cfg.warnings[0].find("the Infra server ignores flat keys entries; nest fields under config:") !=
          std::string::npos);
}

TEST_CASE("the nested value wins when a keys entry gives a field both ways") {
    Config cfg = parse("keys:\n  - kind: vault\n    address: flat\n    config: {address: nested}\n");
    CHECK(cfg.keys[0].get("address") == "nested");
}

TEST_CASE("native over kubernetes with the default key uses infra-x/__root_key") {
    Config cfg = parse("keys:\n  - kind: native\n    config: {secretProvider: kubernetes}\n");
    CHECK(cfg.db_encryption_key == "infra-x/__root_key");
    Config set = parse("dbEncryptionKey: mine/root\nkeys:\n  - kind: native\n    config: {secretProvider: kubernetes}\n");
    CHECK(set.db_encryption_key == "mine/root");
}

TEST_CASE("secrets entries are read flat or nested with names defaulting to the kind") {
    Config cfg = parse(
        "secrets:\n"
        "  - kind: env\n"
        "    name: b64env\n"
        "    base64: true\n"
        "  - kind: file\n"
        "    config:\n"
        "      path: /run/secrets\n"
        "      Base64URLEncoded: true\n");
    REQUIRE(cfg.secrets.size() == 2);
    CHECK(cfg.secrets[0].name == "b64env");
    CHECK(cfg.secrets[0].flag("base64"));
    CHECK(cfg.secrets[1].name == "file");
    CHECK(cfg.secrets[1].get("path") == "/run/secrets");
    CHECK(cfg.secrets[1].flag("base64urlencoded"));
    CHECK_FALSE(cfg.secrets[1].flag("base64raw"));
    CHECK(cfg.warnings.empty());
}

TEST_CASE("malformed YAML is a usage error naming the file and line") {
    std::string message = usage_error("dbFile: /a\nkeys: [\n  - kind: native\n");
    CHECK(message.find("config /etc/infra.yaml line") != std::string::npos);
    CHECK(message.find("malformed YAML") != std::string::npos);
}

TEST_CASE("an unknown key provider kind names file, line and key") {
    std::string message = usage_error("dbFile: /a\nkeys:\n  - kind: native\n  - kind: awskmss\n");
    CHECK(message == "config /etc/infra.yaml line 4: keys[1].kind: unknown key provider kind \"awskmss\" "
                     "(expected native, awskms or vault)");
}

TEST_CASE("an empty dbEncryptionKey is a usage error naming file and line, tagged or not (found by the fuzzer)") {
    CHECK(usage_error("dbFile: /a\ndbEncryptionKey: \"\"\n") == "config /etc/infra.yaml line 2: dbEncryptionKey is empty");
    CHECK(usage_error("dbEncryptionKey: !\n") == "config /etc/infra.yaml line 1: dbEncryptionKey is empty");
    CHECK(usage_error("keys:\n  - kind: vault\n    config:\n      address: https://vault:8200\n"
                      "dbEncryptionKeyProvider: vault\ndbEncryptionKey: ''\n")
              .find("dbEncryptionKey is empty") != std::string::npos);
}

TEST_CASE("a list where a map is expected names file, line and key") {
    std::string message = usage_error("keys:\n  - kind: vault\n    config:\n      - address\n");
    CHECK(message.find("config /etc/infra.yaml line 4") != std::string::npos);
    CHECK(message.find("keys[0].config") != std::string::npos);
    CHECK(message.find("expected a map, found a list") != std::string::npos);
}

TEST_CASE("a map where a single value is expected names the key") {
    std::string message = usage_error("\ndbFile: {a: b}\n");
    CHECK(message.find("line 2: dbFile: expected a single value, found a map") != std::string::npos);
}

TEST_CASE("a duplicate secret storage name names the second entry and the first") {
    std::string message = usage_error("secrets:\n  - kind: env\n    name: x\n  - kind: file\n    name: x\n");
    CHECK(message == "config /etc/infra.yaml line 5: secrets[1].name: duplicate secret storage name \"x\" "
                     "(also defined on line 2)");
    CHECK_THROWS_AS(parse("secrets:\n  - kind: env\n  - kind: env\n"), Error);
}

TEST_CASE("an unknown secret storage kind is a usage error") {
    std::string message = usage_error("secrets:\n  - kind: gcpsecrets\n");
    CHECK(message.find("line 2: secrets[0].kind: unknown secret storage kind \"gcpsecrets\"") != std::string::npos);
}

TEST_CASE("a keys entry without a kind is a usage error") {
    CHECK(usage_error("keys:\n  - config: {a: b}\n").find("keys[0]: missing kind") != std::string::npos);
}

TEST_CASE("an unknown provider name is a usage error naming where it came from") {
    CHECK(usage_error("dbEncryptionKeyProvider: gcpkms\n").find("line 1: dbEncryptionKeyProvider") != std::string::npos);
    CHECK(usage_error("", {{"INFRA_SERVER_DB_ENCRYPTION_KEY_PROVIDER", "x"}})
              .find("environment INFRA_SERVER_DB_ENCRYPTION_KEY_PROVIDER") != std::string::npos);
    Config cfg;
    cfg.db_encryption_key_provider = "nope";
    CHECK_THROWS_AS(cfg.active_provider(), Error);
}

TEST_CASE("a port that is not a number is a usage error") {
    CHECK(usage_error("dbPort: fast\n").find("dbPort: expected a port number") != std::string::npos);
}

TEST_CASE("config_path prefers the flag, then INFRA_KEYS_CONFIG, then INFRA_SERVER_CONFIG_FILE") {
    auto both = env_of({{"INFRA_KEYS_CONFIG", "/k.yaml"}, {"INFRA_SERVER_CONFIG_FILE", "/s.yaml"}});
    CHECK(config::config_path(std::string("/flag.yaml"), both) == "/flag.yaml");
    CHECK(config::config_path(std::nullopt, both) == "/k.yaml");
    CHECK(config::config_path(std::nullopt, env_of({{"INFRA_SERVER_CONFIG_FILE", "/s.yaml"}})) == "/s.yaml");
    CHECK_FALSE(config::config_path(std::nullopt, env_of({})).has_value());
}

TEST_CASE("load reads the named file and refuses a missing one") {
    auto dir = std::filesystem::temp_directory_path() / ("ik-config-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string path = (dir / "infra.yaml").string();
    std::ofstream(path) << "dbFile: /x.db\n";
    Config cfg = config::load(path, env_of({}));
    CHECK(cfg.source == path);
    CHECK(cfg.db_file == "/x.db");
    std::filesystem::remove_all(dir);
    try {
        config::load(path, env_of({}));
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::usage);
        CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
}

TEST_CASE("a misspelt option is accepted as the server accepts it, with a warning naming line and nearest option") {
    Config cfg = parse("dbFile: /a.db\ndbEncrpytionKeyProvider: awskms\n");
    CHECK(cfg.db_encryption_key_provider == "native");  // the server too would ignore it
    REQUIRE(cfg.warnings.size() == 1);
    CHECK(cfg.warnings[0] ==
          "config /etc/infra.yaml line 2: dbEncrpytionKeyProvider is not an Infra server option; the server ignores "
          "it (did you mean dbEncryptionKeyProvider?)");
}

TEST_CASE("an unknown option far from every known one gets no suggestion") {
    Config cfg = parse("frobnicate: 1\n");
    REQUIRE(cfg.warnings.size() == 1);
    CHECK(cfg.warnings[0].find("frobnicate is not an Infra server option") != std::string::npos);
    CHECK(cfg.warnings[0].find("did you mean") == std::string::npos);
}

TEST_CASE("options of the server that infra-keys does not use, in any case, draw no warning") {
    Config cfg = parse("DBFILE: /a.db\naddr: {http: 80}\ntls: {}\nproviders: []\ngrants: []\nenableSignup: true\n"
                       "sessionDuration: 12h\ndbConnectionString: host=db\n");
    CHECK(cfg.db_file == "/a.db");
    CHECK(cfg.warnings.empty());
}

TEST_CASE("an option given twice warns with both lines; the last one is used") {
    Config cfg = parse("dbFile: /first.db\ndbEncryptionKey: /k\ndbfile: /second.db\n");
    CHECK(cfg.db_file == "/second.db");
    REQUIRE(cfg.warnings.size() == 1);
    CHECK(cfg.warnings[0] == "config /etc/infra.yaml line 3: dbfile is given twice (also on line 1); the last one is used");
}

TEST_CASE("a misspelt option under a Helm values file's server.config is named too") {
    Config cfg = parse("server:\n  config:\n    dbHots: postgres\n");
    REQUIRE(cfg.warnings.size() == 1);
    CHECK(cfg.warnings[0].find("line 3: dbHots is not an Infra server option") != std::string::npos);
    CHECK(cfg.warnings[0].find("did you mean dbHost?") != std::string::npos);
}

TEST_CASE("an empty or comment-only config file warns that the defaults apply") {
    for (const char* text : {"", "# only a comment\n\n", "---\n"}) {
        Config cfg = parse(text);
        CHECK(cfg.db_file == "/home/op/.infra/sqlite3.db");
        REQUIRE(cfg.warnings.size() == 1);
        CHECK(cfg.warnings[0].find("config /etc/infra.yaml is empty") != std::string::npos);
        CHECK(cfg.warnings[0].find("the server's defaults apply") != std::string::npos);
    }
}

TEST_CASE("a directory given as the config file is a usage error naming it") {
    auto dir = std::filesystem::temp_directory_path() / ("ik-config-dir-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    try {
        config::load(dir.string(), env_of({}));
        FAIL("expected a usage error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::usage);
        CHECK(std::string(e.what()).find("is a directory, not a config file") != std::string::npos);
        CHECK(e.hint().find((dir / "infra.yaml").string()) != std::string::npos);
    }
    std::filesystem::remove_all(dir);
}

TEST_CASE("dbConnectionString (v0.15.0+) points at PostgreSQL, from the file or the environment") {
    Config cfg = parse("dbConnectionString: host=db.internal dbname=infra sslmode=verify-full\n");
    CHECK(cfg.db_connection_string == "host=db.internal dbname=infra sslmode=verify-full");
    CHECK(cfg.uses_postgres());
    Config from_env = parse("dbFile: /var/lib/infra/sqlite3.db\n",
                            {{"INFRA_SERVER_DB_CONNECTION_STRING", "postgresql://infra@db/infra"}});
    CHECK(from_env.db_connection_string == "postgresql://infra@db/infra");
    CHECK(from_env.uses_postgres());
    CHECK_FALSE(parse("dbFile: /var/lib/infra/sqlite3.db\n").uses_postgres());
}
