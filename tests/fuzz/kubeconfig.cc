// The kubeconfig reader (secrets/kubeconfig.h), from text.
#include "fuzz.h"
#include "secrets/kubeconfig.h"

using namespace ik;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(fuzz::text_of(data, size));
    // Relative token and certificate files resolve under a directory that does not exist.
    fuzz::expect_success_or_refusal([&] { secrets::kubeconfig_from_text(text, "/nonexistent/kubeconfig"); });
    return 0;
}
