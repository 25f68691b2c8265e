// Kubernetes Secret objects as the API answers them (secrets/kubernetes.h).
#include "fuzz.h"
#include "secrets/kubernetes.h"

using namespace ik;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view body = fuzz::text_of(data, size);
    fuzz::expect_success_or_refusal([&] { secrets::parse_kubernetes_secret(body, "kubernetes"); });
    return 0;
}
