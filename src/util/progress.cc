#include "util/progress.h"

#include <cstdio>

#include <fmt/format.h>

#include "util/output.h"

namespace ik {

Progress::Progress(std::string label, bool wanted)
    : label_(std::move(label)), enabled_(wanted && out::stderr_is_terminal()),
      start_(std::chrono::steady_clock::now()), last_draw_() {}

void Progress::update(uint64_t done, uint64_t total) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total) return;
    last_draw_ = now;
    drawn_ = true;
    double seconds = std::chrono::duration<double>(now - start_).count();
    double rate = seconds > 0 ? done / seconds : 0;
    double eta = rate > 0 && total > done ? (total - done) / rate : 0;
    int width = 30;
    int filled = total ? static_cast<int>(width * done / total) : width;
    std::fprintf(stderr, "\r%s [%s%s] %llu/%llu  %.0f/s  ETA %.0fs ", label_.c_str(),
                 std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total), rate, eta);
    std::fflush(stderr);
}

void Progress::finish() {
    if (enabled_ && drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
}

}  // namespace ik
