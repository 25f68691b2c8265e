// Vault transit answers (providers/vault.h): the data object, a string field, the errors list.
#include "fuzz.h"
#include "providers/vault.h"

using namespace ik;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view body = fuzz::text_of(data, size);
    fuzz::expect_success_or_refusal([&] {
        SecretJson answer = providers::vault_answer_data(body, "vault");
        for (const char* field : {"plaintext", "ciphertext"})
            fuzz::expect_success_or_refusal([&] { providers::vault_string_field(answer, field, "vault"); });
        answer.value("latest_version", 0);
        answer.value("min_decryption_version", 0);
    });
    fuzz::expect_success_or_refusal([&] { providers::vault_errors(body); });
    return 0;
}
