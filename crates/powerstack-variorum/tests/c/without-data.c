/* Calls whose data powerstack does not have: each must fail (-1), and a JSON output stays
 * untouched. Prints one "name rc" line per call. */
#include <stdio.h>
#include <variorum.h>
#include <variorum_error.h>

int main(void)
{
    char *untouched = (char *)"untouched";
    char *s = untouched;
    printf("variorum_print_thermals %d\n", variorum_print_thermals());
    printf("variorum_print_counters %d\n", variorum_print_counters());
    printf("variorum_enable_turbo %d\n", variorum_enable_turbo());
    printf("variorum_cap_gpu_power_ratio %d\n", variorum_cap_gpu_power_ratio(50));
    printf("variorum_get_thermals_json %d\n", variorum_get_thermals_json(&s));
    printf("variorum_get_utilization_json %d\n", variorum_get_utilization_json(&s));
    printf("output %s\n", s == untouched ? "untouched" : "changed");
    printf("runtime error code %d\n", VARIORUM_ERROR_RUNTIME);
    return 0;
}
