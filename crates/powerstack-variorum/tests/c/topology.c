/* In the style of Variorum's variorum-get-topology-info-example, with the version. */
#include <stdio.h>
#include <variorum.h>
#include <variorum_topology.h>

int main(void)
{
    printf("version %s\n", variorum_get_current_version());
    if (variorum_init_topology() != 0)
    {
        return 1;
    }
    printf("sockets %d\n", variorum_get_num_sockets());
    printf("cores %d\n", variorum_get_num_cores());
    printf("threads %d\n", variorum_get_num_threads());
    variorum_print_topology();
    return variorum_print_hyperthreading() == 0 ? 0 : 1;
}
