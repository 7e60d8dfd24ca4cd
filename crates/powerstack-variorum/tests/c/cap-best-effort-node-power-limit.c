/* In the style of Variorum's variorum-cap-best-effort-node-power-limit-example: -l WATTS. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <variorum.h>

int main(int argc, char **argv)
{
    int node_pow_lim_watts = 500;
    int opt;
    while ((opt = getopt(argc, argv, "l:")) != -1)
    {
        if (opt == 'l')
        {
            node_pow_lim_watts = atoi(optarg);
        }
    }
    int ret = variorum_cap_best_effort_node_power_limit(node_pow_lim_watts);
    printf("cap_best_effort_node_power_limit(%d) returned %d\n", node_pow_lim_watts, ret);
    if (ret != 0)
    {
        return 1;
    }
    ret = variorum_print_verbose_power_limit();
    return ret == 0 ? 0 : 1;
}
