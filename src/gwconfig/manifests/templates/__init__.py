"""``*.yaml.j2`` manifests: Jinja2 rendering, sandboxed and bounded.

:mod:`~gwconfig.manifests.templates.render` renders a template (the entry point,
:func:`~gwconfig.manifests.templates.render.render`), :mod:`~gwconfig.manifests.templates.sandbox`
meters every operation, :mod:`~gwconfig.manifests.templates.limits` is the budget of one render and
:mod:`~gwconfig.manifests.templates.checks` the checks made before an operation that can multiply
its input. Jinja2 is imported only with these modules, when a manifest is a template.
"""
