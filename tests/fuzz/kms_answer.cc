// AWS KMS answers (providers/awskms.h): the JSON object and its base64 blob fields.
#include "fuzz.h"
#include "providers/awskms.h"

using namespace ik;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view body = fuzz::text_of(data, size);
    fuzz::expect_success_or_refusal([&] {
        SecretJson answer = providers::kms_answer(body, "awskms");
        for (const char* field : {"Plaintext", "CiphertextBlob"})
            fuzz::expect_success_or_refusal([&] { providers::kms_blob_field(answer, field, "awskms"); });
    });
    return 0;
}
