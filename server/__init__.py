"""The service, one package per concern (imports go down this list, never up):

- `engine`: decode, batch on the model, answer; knows no transport (no fastapi, no ray);
- `settings`: the one configuration object, unpacked here into each part's limits;
- `api`: the HTTP app (FastAPI) around an engine;
- `offline`: answers for collections of files, in local worker processes or as a Ray Data job;
- `ray_serve`: the HTTP app and the engine's parts as Ray Serve deployments.
"""
