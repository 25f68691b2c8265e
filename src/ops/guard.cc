#include "ops/guard.h"

#include "ops/key_slots.h"
#include "util/error.h"
#include "util/processes.h"

namespace ik::ops {

void refuse_if_rotation_interrupted(Installation& inst) {
    auto slots = key_slots(inst);
    if (slots && slots->holds(slots->next()))
        throw Error(ExitCode::interrupted,
                    fmt::format("a root key rotation was interrupted: {} holds a new key not yet installed",
                                slots->describe(slots->next())),
                    "run `infra-keys rotate-root --resume` to complete it (the Infra server may not start until then)");
}

void require_server_stopped(Installation& inst, bool asserted_stopped) {
    if (asserted_stopped) return;
    std::vector<std::string> users = inst.config.uses_postgres() || inst.db_url
                                         ? inst.store().other_clients()
                                         : processes::with_file_open(inst.config.db_file);
    if (users.empty()) return;
    std::string list;
    for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
    throw Error(ExitCode::refused,
                fmt::format("{} is in use by {}; stop the Infra server before changing keys", inst.store().describe(), list),
                "the server caches the wrapped db key and would re-seal values with the old key id; "
                "stop it, or pass --server-stopped if these are not Infra servers");
}

}  // namespace ik::ops
