/* In the style of Variorum's variorum-get-node-power-domain-info-json-example. */
#include <stdio.h>
#include <stdlib.h>
#include <variorum.h>

int main(void)
{
    char *s = NULL;
    int ret = variorum_get_node_power_domain_info_json(&s);
    if (ret != 0 || s == NULL)
    {
        printf("JSON get node power domain information failed!\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}
