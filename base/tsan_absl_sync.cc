// ThreadSanitizer builds only (LLAMA_TSAN, CMakeLists.txt): makes Debian's Abseil Mutex and Notification visible to
// TSan. libabsl_synchronization.so is not built with TSan, so the happens-before edges its Lock/Unlock create are
// invisible and every access guarded by an absl::Mutex would be reported as a race. The linker's --wrap routes our
// calls of the functions this project uses (nm -u of the binaries lists them) through these wrappers, which tell
// TSan what the real function does: Unlock and Notify release, Lock and the waits acquire; Await is reimplemented
// on top of them (below). Nothing changes outside TSan builds: this file is not compiled there.
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);

#define LLAMA_ABSL_SYM(x) _ZN4absl7debian3##x

// absl::Mutex::Lock()
void __real__ZN4absl7debian35Mutex4LockEv(absl::Mutex* mu);
void __wrap__ZN4absl7debian35Mutex4LockEv(absl::Mutex* mu) {
  __real__ZN4absl7debian35Mutex4LockEv(mu);
  __tsan_acquire(mu);
}
// absl::Mutex::Unlock()
void __real__ZN4absl7debian35Mutex6UnlockEv(absl::Mutex* mu);
void __wrap__ZN4absl7debian35Mutex6UnlockEv(absl::Mutex* mu) {
  __tsan_release(mu);
  __real__ZN4absl7debian35Mutex6UnlockEv(mu);
}
// absl::Mutex::Await(const Condition&) and AwaitWithTimeout. The real ones evaluate the condition inside the
// library (in the waiter's lock loop and in other threads' Unlock), where no annotation can order it, so TSan saw
// the condition's reads race with the writes that made it true. Here the waiting thread evaluates the condition
// itself, holding the (annotated) lock, and between tries unlocks and sleeps: the same contract (returns holding
// the lock once the condition is true), polled instead of woken, in TSan builds only.
void __wrap__ZN4absl7debian35Mutex6UnlockEv(absl::Mutex* mu);
void __wrap__ZN4absl7debian35Mutex4LockEv(absl::Mutex* mu);
void __wrap__ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE(absl::Mutex* mu, const absl::Condition& cond) {
  while (!cond.Eval()) {
    __wrap__ZN4absl7debian35Mutex6UnlockEv(mu);
    absl::SleepFor(absl::Microseconds(50));
    __wrap__ZN4absl7debian35Mutex4LockEv(mu);
  }
}
bool __wrap__ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE(absl::Mutex* mu,
                                                                                     const absl::Condition& cond,
                                                                                     absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!cond.Eval()) {
    if (absl::Now() >= deadline) return false;
    __wrap__ZN4absl7debian35Mutex6UnlockEv(mu);
    absl::SleepFor(absl::Microseconds(50));
    __wrap__ZN4absl7debian35Mutex4LockEv(mu);
  }
  return true;
}
// absl::Notification::Notify()
void __real__ZN4absl7debian312Notification6NotifyEv(absl::Notification* n);
void __wrap__ZN4absl7debian312Notification6NotifyEv(absl::Notification* n) {
  __tsan_release(n);
  __real__ZN4absl7debian312Notification6NotifyEv(n);
}
// absl::Notification::WaitForNotification() const
void __real__ZNK4absl7debian312Notification19WaitForNotificationEv(const absl::Notification* n);
void __wrap__ZNK4absl7debian312Notification19WaitForNotificationEv(const absl::Notification* n) {
  __real__ZNK4absl7debian312Notification19WaitForNotificationEv(n);
  __tsan_acquire(const_cast<absl::Notification*>(n));
}
// absl::Notification::WaitForNotificationWithTimeout(Duration) const
bool __real__ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE(
    const absl::Notification* n, absl::Duration timeout);
bool __wrap__ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE(
    const absl::Notification* n, absl::Duration timeout) {
  const bool notified =
      __real__ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE(n, timeout);
  __tsan_acquire(const_cast<absl::Notification*>(n));
  return notified;
}
}  // extern "C"
