from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.chatbots.api.authentication.ApiKeyAuthentication"
    name = "BotApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "cm_<prefix>_<secret>",
            "description": "The chatbot's API key (create one in the admin or with `manage.py create_api_key`).",
        }
