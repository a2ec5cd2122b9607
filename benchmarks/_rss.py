"Peak RSS of the current process, for the benchmarks."
import resource

def own_peak_kb()->int:
    """Peak RSS (KiB) of this process since it started. Linux's ru_maxrss carries over the peak of the process that
    spawned it (a benchmark parent grown by earlier runs), so read VmHWM, which starts afresh at exec."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"): return int(line.split()[1])
    except OSError: pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
