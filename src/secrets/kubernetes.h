// The `kubernetes` secret storage: keys of Secrets in a namespace, read and written over the API.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "net/http.h"
#include "secrets/kube_api.h"
#include "secrets/kubeconfig.h"
#include "secrets/secret_store.h"

namespace ik::secrets {

struct KubernetesSecret {
    std::string resource_version;
    std::string metadata_json;  // metadata as read (labels, annotations), sent back on update
    std::string type = "Opaque";
    std::map<std::string, std::string> data;  // key → base64, as the API holds it
};

// A Secret object as the API answers it, parsed without a server (tests/fuzz); a body that is
// not such an object is ik::Error(provider) naming `where`.
KubernetesSecret parse_kubernetes_secret(std::string_view body, const std::string& where);

// Names are "OBJECT/KEY": data key KEY of Secret OBJECT in the storage's namespace (the entry's
// `namespace` option, else the context's or service account's, else "default").
class KubernetesSecretStorage : public SecretStorage {
public:
    KubernetesSecretStorage(KubeConnection connection, const std::string& namespace_option);

    std::string kind() const override { return "kubernetes"; }
    std::optional<SecretBytes> get(const std::string& name) override;
    void set(const std::string& name, const SecretBytes& value) override;
    void remove(const std::string& name) override;
    std::vector<std::string> names_with_prefix(const std::string& prefix) override;
    // Both are one write conditional on the resourceVersion just read: a concurrent writer makes
    // them fail with ik::Error(refused) instead of one of the two writes being lost.
    void create(const std::string& name, const SecretBytes& value) override;
    void rename(const std::string& from, const std::string& to) override;
    std::string describe(const std::string& name) const override;
    // A Secret that Helm manages (label app.kubernetes.io/managed-by: Helm or annotation
    // meta.helm.sh/release-name) without the annotation helm.sh/resource-policy: keep: a
    // `helm uninstall` deletes it, and with it the root key.
    std::vector<std::string> warnings(const std::string& name) override;
    // The classic failure of the Helm chart: a GitOps render regenerated the key Secret.
    std::string wrong_key_hint(const std::string& name) const override;

    // Sets (a value) or deletes (nullopt) several keys of Secret `object` in ONE write that is
    // conditional on the resourceVersion just read; creates the Secret if it does not exist.
    // A concurrent change → ik::Error(refused) and nothing written.
    void set_many(const std::string& object, const std::map<std::string, std::optional<SecretBytes>>& keys);

    const std::string& namespace_name() const { return namespace_; }

private:
    using Secret = KubernetesSecret;
    std::optional<Secret> read(const std::string& object);
    // The write of set_many against `current` as read (nullopt: the Secret does not exist).
    void write(const std::string& object, const std::optional<Secret>& current,
               const std::map<std::string, std::optional<SecretBytes>>& keys);
    std::string object_path(const std::string& object) const;  // under the API server

    KubeApi api_;
    std::string namespace_;
};

// `entry` is the `secrets:` entry (or a default one named "kubernetes"); `env` supplies
// KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT and HOME.
std::unique_ptr<SecretStorage> make_kubernetes_storage(const config::SecretStorage& entry,
                                                       const config::Environment& env);

}  // namespace ik::secrets
